/*
 * The shared value types and enum strings of core/common.c.
 */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#include <tally/decode.h>
#include <tally/error.h>
#include <tally/home.h>
#include <tally/registry.h>
#include <tally/uuid.h>
#include <tally/vote.h>

Test(uuid, parses_either_case_and_formats_lower_case)
{
	tally_uuid_t id;
	char buf[TALLY_UUID_STRLEN + 1];

	cr_assert(tally_uuid_parse("0123abcd-EF45-4678-9aBc-def012345678", 36, &id));
	cr_assert_eq(id.hi, 0x0123abcdef454678ULL);
	cr_assert_eq(id.lo, 0x9abcdef012345678ULL);
	cr_assert_str_eq(tally_uuid_format(&id, buf), "0123abcd-ef45-4678-9abc-def012345678");
}

Test(uuid, refuses_every_misplaced_character)
{
	const char *good = "0123abcd-ef45-4678-9abc-def012345678";
	static const char bad[] = "gG/:@`-x\x80\xff ";
	char text[37];
	tally_uuid_t id;

	cr_assert_not(tally_uuid_parse(good, 35, &id));
	cr_assert_not(tally_uuid_parse("0123abcd-ef45-4678-9abc-def0123456789", 37, &id));
	/* Each position, each wrong character: exactly the dash positions accept '-'. */
	for (int i = 0; i < 36; i++) {
		for (size_t k = 0; k < sizeof(bad) - 1; k++) {
			bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;

			memcpy(text, good, 37);
			text[i] = bad[k];
			cr_assert_eq(tally_uuid_parse(text, 36, &id), dash_pos && bad[k] == '-',
			             "position %d character 0x%02x", i, (unsigned char)bad[k]);
		}
		memcpy(text, good, 37);
		text[i] = (i == 8 || i == 13 || i == 18 || i == 23) ? 'a' : '-';
		cr_assert_not(tally_uuid_parse(text, 36, &id), "position %d", i);
	}
}

Test(uuid, round_trips_random_ids)
{
	uint64_t x = 88172645463325252ULL;
	char buf[TALLY_UUID_STRLEN + 1];

	for (int i = 0; i < 10000; i++) {
		tally_uuid_t a, b;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		a.hi = x;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		a.lo = x;
		cr_assert(tally_uuid_parse(tally_uuid_format(&a, buf), 36, &b));
		cr_assert(tally_uuid_equal(&a, &b));
	}
}

Test(names, enums_have_stable_names)
{
	cr_assert_str_eq(tally_reason_name(TALLY_REASON_UNKNOWN_VOTER), "unknown_voter");
	cr_assert_str_eq(tally_reason_name(TALLY_REASON_POLLS_CLOSED), "polls_closed");
	cr_assert_str_eq(tally_reason_name(99), "unknown");
	cr_assert_eq(tally_reason_from_name("duplicate"), TALLY_REASON_DUPLICATE);
	cr_assert_eq(tally_reason_from_name("nope"), -1);
	cr_assert_str_eq(tally_err2str(TALLY_ENOMEM), "out of memory");
	cr_assert_str_eq(tally_err_name(TALLY_ECORRUPT), "TALLY_ECORRUPT");
	cr_assert_str_eq(tally_err2str(0), "success");
	cr_assert_str_eq(tally_err2str(-1000), "unknown error");
	cr_assert_str_eq(tally_refusal_name(TALLY_REFUSAL_UNKNOWN_PARTY), "unknown_party");
	cr_assert_str_eq(tally_decode_err_name(TALLY_DECODE_ERR_DUPLICATE), "duplicate");
	for (int r = 0; r < TALLY_REASON__COUNT; r++)
		cr_assert_eq(tally_reason_from_name(tally_reason_name(r)), r);
}

Test(home, crc32_is_the_ieee_one)
{
	cr_assert_eq(tally_crc32("123456789", 9), 0xcbf43926u);
	cr_assert_eq(tally_crc32("", 0), 0u);
	cr_assert_eq(tally_crc32("a", 1), 0xe8b7be43u);
}

/* A vote keyed by its voter_id's text is produced to its home partition by librdkafka's
 * default partitioner, so such votes need no forwarding. */
Test(home, is_librdkafkas_partition_for_the_voter_key)
{
	uint64_t x = 0x243f6a8885a308d3ull;
	char text[TALLY_UUID_STRLEN + 1];
	unsigned counts[12] = {0};

	for (int i = 0; i < 20000; i++) {
		tally_uuid_t id;
		int32_t n = 1 + i % 64;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		id.hi = x;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		id.lo = x;
		tally_uuid_format(&id, text);
		cr_assert_eq((int32_t)tally_home_partition(&id, (uint32_t)n),
		             rd_kafka_msg_partitioner_consistent(NULL, text, TALLY_UUID_STRLEN, n, NULL,
		                                                 NULL),
		             "voter %s among %d partitions", text, n);
		counts[tally_home_partition(&id, 12)]++;
	}
	/* Spread: 20,000 voters over 12 homes, none far from 1,667. */
	for (int p = 0; p < 12; p++)
		cr_assert(counts[p] > 1400 && counts[p] < 1950, "home %d has %u voters", p, counts[p]);
	cr_assert_eq(tally_home_partition(&(tally_uuid_t){1, 2}, 0), 0u);
}
