/*
 * tally-bench decode: the vote decoder against jansson on the same messages, in the same run,
 * on one thread.
 *
 * Messages are built here by a seeded loop in the original votes_topic shape (~1 KB: every
 * voter field with the nested address, every candidate field, voting_time, vote = 1), or in
 * the compact shape with --compact. The jansson side does what a jansson-based consumer must
 * do for the same result: json_loadb, fetch the four fields, parse both ids and the time.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tally/decode.h>
#include <tally/time.h>
#include <tally/uuid.h>

#include "bench.h"

struct msg {
	char *data;
	size_t len;
};

static uint64_t
mix(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#define PICK(st, arr) ((arr)[mix(st) % (sizeof(arr) / sizeof((arr)[0]))])

static const char *const first_f[] = {"Eleanor", "Siân", "Zoë", "Aoife", "Rhiannon", "Eilidh",
                                      "Charlotte", "Imogen", "Niamh", "Ffion", "Harriet", "Priya"};
static const char *const first_m[] = {"Oliver", "Dafydd", "Seán", "Callum", "Hamish", "Rhys",
                                      "Alfie", "Ruairí", "Tomás", "Idris", "Arjun", "Gethin"};
static const char *const last_names[] = {"Whitfield", "O'Sullivan", "MacLeod", "Pemberton",
                                         "Llewellyn", "Cholmondeley", "Patel", "Ferguson",
                                         "Thistlethwaite", "Bryant", "Hughes", "Okonkwo"};
static const char *const streets[] = {"Church Lane", "High Street", "Station Road", "Mill Lane",
                                      "Queen Street", "The Green", "Victoria Road", "Castle Street"};
static const char *const cities[][3] = {
	{"Bristol", "Somerset", "BS1 4DJ"},        {"Inverness", "Highland", "IV1 1AA"},
	{"Keswick", "Cumbria", "CA12 5JR"},        {"Cardiff", "South Glamorgan", "CF10 2BH"},
	{"Belfast", "County Antrim", "BT1 5GS"},   {"Truro", "Cornwall", "TR1 3AH"},
	{"Stornoway", "Na h-Eileanan Siar", "HS1 2XX"}, {"Brighton and Hove", "East Sussex", "BN1 2FL"},
};
static const char *const candidates[][3] = {
	{"6f1c2a9e-4b7d-4e21-9a3f-0c5d8e7b1a24", "Margaret Ashworth", "Management Party"},
	{"b3e0d7c4-1f2a-4c8e-8d6b-5a9f3e2c7d10", "Gareth Pryce-Jones", "Savior Party"},
	{"0d9a4f8b-7c3e-4a1d-b2f6-e8c5a7d9b3f2", "Isobel Ní Chonaill", "Tech Republic Party"},
};
static const char *const words[] = {"rural", "bus", "routes", "the", "NHS", "fair", "rents",
                                    "flood", "defences", "along", "Severn", "broadband", "for",
                                    "Highlands", "apprenticeships", "in", "Teesside", "libraries",
                                    "cleaner", "rivers", "railway", "from", "Penzance", "Thurso"};

static void
put_uuid(uint64_t *st, char *out)
{
	tally_uuid_t id = {mix(st), mix(st)};

	id.hi = (id.hi & ~0xf000ULL) | 0x4000ULL;
	id.lo = (id.lo & ~(3ULL << 62)) | (2ULL << 62);
	tally_uuid_format(&id, out);
}

static int
put_words(uint64_t *st, char *out, size_t cap, int n)
{
	int k = 0;

	for (int i = 0; i < n && (size_t)k + 20 < cap; i++)
		k += snprintf(out + k, cap - (size_t)k, "%s%s", i ? " " : "", PICK(st, words));
	return k;
}

static struct msg
make_message(uint64_t i, bool compact)
{
	uint64_t st = i * 0x2545f4914f6cdd1dULL + 7;
	char voter[37], when[24], bio[400], platform[300], buf[2048];
	const char *const *cand = candidates[mix(&st) % 3];
	struct msg m;
	int n;

	put_uuid(&st, voter);
	tally_time_format(1778137200 + (int64_t)(mix(&st) % 54000), when);
	if (compact) {
		n = snprintf(buf, sizeof(buf),
		             "{\"voter_id\":\"%s\",\"candidate_id\":\"%s\",\"voting_time\":\"%s\"}",
		             voter, cand[0], when);
	} else {
		bool fem = mix(&st) & 1;
		const char *first = fem ? PICK(&st, first_f) : PICK(&st, first_m);
		const char *last = PICK(&st, last_names);
		const char *const *city = cities[mix(&st) % 8];

		put_words(&st, bio, sizeof(bio), 40);
		put_words(&st, platform, sizeof(platform), 30);
		n = snprintf(buf, sizeof(buf),
		             "{\"voter_id\": \"%s\", \"voter_name\": \"%s %s\", "
		             "\"date_of_birth\": \"%04u-%02u-%02uT%02u:%02u:%02u.%03uZ\", "
		             "\"gender\": \"%s\", \"nationality\": \"GB\", "
		             "\"registration_number\": \"%s%s%03u\", "
		             "\"address\": {\"street\": \"%u %s\", \"city\": \"%s\", \"state\": \"%s\", "
		             "\"country\": \"United Kingdom\", \"postcode\": \"%s\"}, "
		             "\"email\": \"%s.%s@example.org\", \"phone_number\": \"01%03u %06u\", "
		             "\"cell_number\": \"07%03u %06u\", "
		             "\"picture\": \"https://portraits.example.org/%s/%u.jpg\", "
		             "\"registered_age\": %u, \"candidate_id\": \"%s\", \"candidate_name\": \"%s\", "
		             "\"party_affiliation\": \"%s\", \"biography\": \"%s.\", "
		             "\"campaign_platform\": \"%s.\", "
		             "\"photo_url\": \"https://portraits.example.org/candidates/%.8s.jpg\", "
		             "\"voting_time\": \"%s\", \"vote\": 1}",
		             voter, first, last, 1940 + (unsigned)(mix(&st) % 67),
		             1 + (unsigned)(mix(&st) % 12), 1 + (unsigned)(mix(&st) % 28),
		             (unsigned)(mix(&st) % 24), (unsigned)(mix(&st) % 60),
		             (unsigned)(mix(&st) % 60), (unsigned)(mix(&st) % 1000),
		             fem ? "female" : "male", PICK(&st, words), PICK(&st, words),
		             (unsigned)(mix(&st) % 1000), 1 + (unsigned)(mix(&st) % 9998),
		             PICK(&st, streets), city[0], city[1], city[2], first, last,
		             (unsigned)(mix(&st) % 1000), (unsigned)(mix(&st) % 1000000),
		             (unsigned)(mix(&st) % 1000), (unsigned)(mix(&st) % 1000000),
		             fem ? "women" : "men", (unsigned)(mix(&st) % 100),
		             (unsigned)(mix(&st) % 20), cand[0], cand[1], cand[2], bio, platform,
		             cand[0], when);
	}
	m.len = (size_t)n;
	m.data = malloc(m.len);
	memcpy(m.data, buf, m.len);
	return m;
}

/* The jansson consumer: what tally_decode_vote saves it from. @returns 0 when decoded. */
static int
jansson_decode(const struct msg *m, tally_vote_t *vote)
{
	json_error_t err;
	json_t *root = json_loadb(m->data, m->len, 0, &err), *v, *c, *t, *n;
	int rc = -1;

	if (!root)
		return -1;
	v = json_object_get(root, "voter_id");
	c = json_object_get(root, "candidate_id");
	t = json_object_get(root, "voting_time");
	n = json_object_get(root, "vote");
	if (json_is_string(v) && json_is_string(c) && json_is_string(t) &&
	    (!n || (json_is_integer(n) && json_integer_value(n) == 1)) &&
	    tally_uuid_parse(json_string_value(v), json_string_length(v), &vote->voter_id) &&
	    tally_uuid_parse(json_string_value(c), json_string_length(c), &vote->candidate_id) &&
	    tally_time_parse(json_string_value(t), json_string_length(t), &vote->voting_time, NULL))
		rc = 0;
	json_decref(root);
	return rc;
}

struct result {
	uint64_t msgs;
	uint64_t bytes;
	double secs;
	uint64_t check;
};

/* Decode the messages round and round for at least secs seconds. */
static int
run(const struct msg *msgs, size_t n, double secs, bool fast, struct result *r)
{
	uint64_t t0 = tally_mono_ns(), deadline = t0 + (uint64_t)(secs * 1e9), now = t0;
	tally_decoder_opts_t opts = {0};

	memset(r, 0, sizeof(*r));
	while (now < deadline) {
		for (size_t i = 0; i < n; i++) {
			tally_vote_t vote;
			int rc = fast ? tally_decode_vote(&opts, msgs[i].data, msgs[i].len, &vote, NULL)
			              : jansson_decode(&msgs[i], &vote);

			if (rc != 0) {
				fprintf(stderr, "tally-bench: message %zu did not decode\n", i);
				return -1;
			}
			r->check += vote.voter_id.lo ^ (uint64_t)vote.voting_time;
			r->bytes += msgs[i].len;
			if ((++r->msgs & 1023) == 0 && (now = tally_mono_ns()) >= deadline)
				break;
		}
		now = tally_mono_ns();
	}
	r->secs = (double)(now - t0) / 1e9;
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: tally-bench decode [--messages N] [--seconds S] [--compact]\n"
	           "  --messages N  distinct messages, decoded round and round (default 20000)\n"
	           "  --seconds S   time per decoder (default 3)\n"
	           "  --compact     voter_id, candidate_id, voting_time only (default: the\n"
	           "                original ~1 KB votes_topic shape)\n");
}

int
tally_bench_decode(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"messages", required_argument, NULL, 'm'},
		{"seconds", required_argument, NULL, 's'},
		{"compact", no_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	size_t n = 20000;
	double secs = 3.0;
	bool compact = false;
	struct msg *msgs;
	struct result fast, jans;
	uint64_t total = 0;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "m:s:ch", longopts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			n = strtoull(optarg, NULL, 10);
			break;
		case 's':
			secs = strtod(optarg, NULL);
			break;
		case 'c':
			compact = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (n == 0 || !(secs > 0)) {
		usage(stderr);
		return 2;
	}

	msgs = calloc(n, sizeof(*msgs));
	if (!msgs) {
		fprintf(stderr, "tally-bench: out of memory for %zu messages\n", n);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		msgs[i] = make_message(i, compact);
		total += msgs[i].len;
	}

	/* Both must read the same fields before their speeds mean anything. */
	for (size_t i = 0; i < n; i++) {
		tally_vote_t a, b;

		if (tally_decode_vote(NULL, msgs[i].data, msgs[i].len, &a, NULL) != 0 ||
		    jansson_decode(&msgs[i], &b) != 0 || !tally_uuid_equal(&a.voter_id, &b.voter_id) ||
		    !tally_uuid_equal(&a.candidate_id, &b.candidate_id) ||
		    a.voting_time != b.voting_time) {
			fprintf(stderr, "tally-bench: decoders disagree on message %zu\n", i);
			return 1;
		}
	}

	if (run(msgs, n, secs, true, &fast) != 0 || run(msgs, n, secs, false, &jans) != 0)
		return 1;
	if (fast.check == 0 || jans.check == 0)
		fprintf(stderr, "tally-bench: unlikely checksum\n");

	printf("%zu %s messages, %.0f bytes on average\n", n, compact ? "compact" : "original-shape",
	       (double)total / (double)n);
	printf("%-10s %12s %9s %13s %9s %9s\n", "decoder", "messages", "seconds", "msgs/s", "MB/s",
	       "ns/msg");
	for (int k = 0; k < 2; k++) {
		const struct result *r = k ? &jans : &fast;

		printf("%-10s %12" PRIu64 " %9.3f %13.0f %9.1f %9.1f\n", k ? "jansson" : "tally",
		       r->msgs, r->secs, (double)r->msgs / r->secs, (double)r->bytes / r->secs / 1e6,
		       r->secs * 1e9 / (double)r->msgs);
	}
	printf("decode votes_per_s=%.0f jansson_ratio=%.2f\n", (double)fast.msgs / fast.secs,
	       ((double)fast.msgs / fast.secs) / ((double)jans.msgs / jans.secs));

	for (size_t i = 0; i < n; i++)
		free(msgs[i].data);
	free(msgs);
	return 0;
}
