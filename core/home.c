/*
 * A voter's home partition (include/tally/home.h): CRC-32 of the voter_id's canonical text.
 * The table is built once, on first use, by whichever thread comes first: every thread
 * builds the same bytes, so a race only writes equal values (published with a release
 * store of the ready flag; a reader that sees it clear builds its own copy first).
 */
#include <stdint.h>

#include <tally/atomic.h>
#include <tally/home.h>

static uint32_t crc_table[256];
static int crc_ready;

static void
crc_table_build(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		tally_store_relaxed(&crc_table[i], c);
	}
	tally_store_release(&crc_ready, 1);
}

uint32_t
tally_crc32(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = 0xffffffffu;

	if (!tally_load_acquire(&crc_ready))
		crc_table_build();
	for (size_t i = 0; i < len; i++)
		c = tally_load_relaxed(&crc_table[(c ^ p[i]) & 0xff]) ^ (c >> 8);
	return c ^ 0xffffffffu;
}

uint32_t
tally_home_partition(const tally_uuid_t *voter_id, uint32_t nparts)
{
	char text[TALLY_UUID_STRLEN + 1];

	if (nparts == 0)
		return 0;
	tally_uuid_format(voter_id, text);
	return tally_crc32(text, TALLY_UUID_STRLEN) % nparts;
}
