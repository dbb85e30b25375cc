/*
 * tally-bench http: what serving results costs the count, and how fast a scrape is.
 *
 * One registry sized for about 10k metric series (candidates plus two series per region,
 * every region given its own series), one core counting flat out on N workers, and, in
 * alternate runs, the same count with nothing else running ("alone") and with the HTTP
 * adapter rendering every 100 ms while a scraper fetches /metrics and /api/results back to
 * back over one keep-alive connection and an SSE client follows /api/stream ("serving").
 * Each run counts --rounds passes over the same votes (the voted bits are cleared before
 * each run, so the first pass is accepted and the rest are duplicates, the same work in
 * both kinds of run). Scrape latency is libcurl's total time per request.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include <tally/atomic.h>
#include <tally/core.h>
#include <tally/http.h>
#include <tally/snapshot.h>
#include <tally/time.h>

#include "bench.h"
#include "fixture.h"
#include "registry_int.h"

#define BATCH 1024

typedef struct scraper {
	uint16_t port;
	int stop;                        /* atomic */
	double *lat_ms;                  /* /metrics latencies */
	size_t n, cap;
	double json_ms_max;
	size_t json_n;
	size_t series, bytes;
	unsigned gap_ms;
	bool contests;                   /* also /api/contests, every row by majority */
	double *contests_ms;
	size_t contests_n, contests_cap;
} scraper_t;

static size_t
sink(char *p, size_t size, size_t n, void *arg)
{
	size_t *total = arg;

	(void)p;
	*total += size * n;
	return size * n;
}

typedef struct body {
	char *p;
	size_t len;
} body_t;

static size_t
keep(char *p, size_t size, size_t n, void *arg)
{
	body_t *b = arg;
	char *nb = realloc(b->p, b->len + size * n + 1);

	if (nb == NULL)
		return 0;
	memcpy(nb + b->len, p, size * n);
	b->p = nb;
	b->len += size * n;
	b->p[b->len] = '\0';
	return size * n;
}

/* Series in a text exposition: lines that are not comments. */
static size_t
count_series(const char *s)
{
	size_t n = 0;

	for (const char *l = s; l != NULL && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		n += *l != '#' && *l != '\n';
	return n;
}

static void *
scraper_main(void *arg)
{
	scraper_t *s = arg;
	CURL *c = curl_easy_init();
	char metrics[64], results[64];
	size_t total = 0;

	snprintf(metrics, sizeof(metrics), "http://127.0.0.1:%u/metrics", (unsigned)s->port);
	snprintf(results, sizeof(results), "http://127.0.0.1:%u/api/results", (unsigned)s->port);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &total);
	while (!tally_load_acquire(&s->stop)) {
		curl_off_t us = 0;

		curl_easy_setopt(c, CURLOPT_URL, metrics);
		if (curl_easy_perform(c) == CURLE_OK) {
			curl_easy_getinfo(c, CURLINFO_TOTAL_TIME_T, &us);
			if (s->n == s->cap) {
				s->cap = s->cap ? 2 * s->cap : 1024;
				s->lat_ms = realloc(s->lat_ms, s->cap * sizeof(double));
			}
			s->lat_ms[s->n++] = (double)us / 1000.0;
		}
		curl_easy_setopt(c, CURLOPT_URL, results);
		if (curl_easy_perform(c) == CURLE_OK) {
			curl_easy_getinfo(c, CURLINFO_TOTAL_TIME_T, &us);
			if ((double)us / 1000.0 > s->json_ms_max)
				s->json_ms_max = (double)us / 1000.0;
			s->json_n++;
		}
		if (s->contests) {
			char url[96];

			snprintf(url, sizeof(url),
			         "http://127.0.0.1:%u/api/contests?sort=majority&order=asc&limit=1000",
			         (unsigned)s->port);
			curl_easy_setopt(c, CURLOPT_URL, url);
			if (curl_easy_perform(c) == CURLE_OK) {
				curl_easy_getinfo(c, CURLINFO_TOTAL_TIME_T, &us);
				if (s->contests_n == s->contests_cap) {
					s->contests_cap = s->contests_cap ? 2 * s->contests_cap : 1024;
					s->contests_ms = realloc(s->contests_ms,
					                         s->contests_cap * sizeof(double));
				}
				s->contests_ms[s->contests_n++] = (double)us / 1000.0;
			}
		}
		if (s->gap_ms)
			usleep(s->gap_ms * 1000);
	}
	curl_easy_cleanup(c);
	return NULL;
}

typedef struct follower {
	uint16_t port;
	int stop;                        /* atomic */
	size_t bytes;
} follower_t;

static int
follower_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	return tally_load_acquire(&((follower_t *)arg)->stop);
}

static void *
follower_main(void *arg)
{
	follower_t *f = arg;
	CURL *c = curl_easy_init();
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/stream", (unsigned)f->port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &f->bytes);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, follower_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, f);
	curl_easy_perform(c);
	curl_easy_cleanup(c);
	return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Count rounds passes over votes on a fresh core; @returns seconds. */
static double
count_run(tally_registry_t *reg, tally_vote_t *votes, uint64_t n, unsigned rounds,
          unsigned threads, bool serve, unsigned gap_ms, scraper_t *sc, tally_http_stats_t *st)
{
	tally_core_opts_t o = fixture_core_opts(threads);
	uint64_t nb = (n + BATCH - 1) / BATCH, t0;
	tally_batch_t *b = calloc(nb, sizeof(*b));
	tally_http_opts_t ho = {.max_region_series = 16384};
	pthread_t st_thread, fo_thread;
	follower_t fo = {0};
	tally_http_t *h = NULL;
	tally_core_t *core;
	char err[256];
	double secs;

	tally__registry_clear_voted(reg);
	o.queue_size = 4096;
	if ((core = tally_core_new(reg, &o, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tally-bench: %s\n", err);
		exit(1);
	}
	tally_core_start(core);
	if (serve) {
		if ((h = tally_http_new(core, &ho, err, sizeof(err))) == NULL ||
		    tally_http_start(h, err, sizeof(err)) != 0) {
			fprintf(stderr, "tally-bench: %s\n", err);
			exit(1);
		}
		{
			/* The contests' latencies add up over the runs. */
			scraper_t keep = *sc;

			memset(sc, 0, sizeof(*sc));
			sc->contests = keep.contests;
			sc->contests_ms = keep.contests_ms;
			sc->contests_n = keep.contests_n;
			sc->contests_cap = keep.contests_cap;
		}
		sc->port = fo.port = tally_http_port(h);
		sc->gap_ms = gap_ms;
		pthread_create(&st_thread, NULL, scraper_main, sc);
		pthread_create(&fo_thread, NULL, follower_main, &fo);
		usleep(300000);
	}
	t0 = tally_mono_ns();
	for (unsigned r = 0; r < rounds; r++) {
		for (uint64_t i = 0; i < nb; i++) {
			uint64_t from = i * BATCH;

			tally_batch_init(&b[i], votes + from, (uint32_t)(n - from < BATCH ? n - from : BATCH),
			                 (uint32_t)i);
			for (uint32_t k = 0; k < b[i].count; k++)
				votes[from + k].reason = TALLY_REASON_ACCEPTED;
		}
		for (uint64_t i = 0; i < nb; i++)
			tally_core_submit(core, &b[i]);
		tally_core_drain(core);
	}
	secs = (double)(tally_mono_ns() - t0) / 1e9;
	if (serve) {
		tally_store_release(&sc->stop, 1);
		tally_store_release(&fo.stop, 1);
		pthread_join(st_thread, NULL);
		pthread_join(fo_thread, NULL);
		tally_http_get_stats(h, st);
		tally_http_destroy(h);
	}
	tally_core_destroy(core);
	free(b);
	return secs;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: tally-bench http [--voters N] [--candidates N] [--regions N] [--threads N]\n"
	           "                        [--rounds N] [--repeat N] [--gap-ms N] [--contests N]\n"
	           "  --voters N      registered voters, one vote each per round (default 4000000)\n"
	           "  --candidates N  candidates (default 100)\n"
	           "  --regions N     regions, each with two series (default 4950: ~10k series)\n"
	           "  --threads N     core workers (default 2)\n"
	           "  --rounds N      passes over the votes per run (default 10)\n"
	           "  --repeat N      runs of each kind, alternating, best kept (default 3)\n"
	           "  --gap-ms N      pause between two scrape pairs (default 100; 0: back to back)\n"
	           "  --contests N    N constituencies over the regions (region r in r %% N), 5\n"
	           "                  candidates each (--candidates unused); the scraper also\n"
	           "                  pages every contest by majority from /api/contests\n");
}

int
tally_bench_http(int argc, char **argv)
{
	static const struct option opts[] = {
		{"voters", required_argument, NULL, 'v'}, {"candidates", required_argument, NULL, 'c'},
		{"regions", required_argument, NULL, 'g'}, {"threads", required_argument, NULL, 't'},
		{"rounds", required_argument, NULL, 'r'}, {"repeat", required_argument, NULL, 'p'},
		{"gap-ms", required_argument, NULL, 'm'}, {"contests", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	unsigned ncontests = 0;
	uint64_t nvoters = 4000000;
	unsigned ncand = 100, nregions = 4950, threads = 2, rounds = 10, repeat = 3, gap_ms = 100;
	double best_alone = 1e30, best_serve = 1e30, p50 = 0, p99 = 0, pmax = 0, idle_p50 = 0;
	tally_registry_opts_t ro;
	tally_registry_t *reg;
	tally_vote_t *votes;
	scraper_t sc = {0};
	size_t series = 0, bytes = 0;
	char err[256], name[64], party[64];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'v': nvoters = strtoull(optarg, NULL, 10); break;
		case 'c': ncand = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'g': nregions = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't': threads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': rounds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'p': repeat = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'm': gap_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'k': ncontests = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (ncontests > 0)
		ncand = ncontests * 5;
	if (nvoters == 0 || ncand == 0 || (ncontests == 0 && ncand > 256) || nregions == 0 ||
	    nregions > 16384 || ncontests > nregions || threads == 0 || threads > 64 ||
	    rounds == 0 || repeat == 0) {
		usage(stderr);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);

	memset(&ro, 0, sizeof(ro));
	ro.expected_voters = nvoters;
	ro.max_candidates = ncand;
	ro.max_regions = nregions;
	ro.max_parties = 8;
	ro.max_contests = ncontests + 1;
	if ((reg = tally_registry_new(&ro, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tally-bench: %s\n", err);
		return 1;
	}
	for (unsigned p = 0; p < 8; p++) {
		snprintf(name, sizeof(name), "Party %u", p);
		tally_registry_add_party(reg, name, NULL);
	}
	for (unsigned r = 0; r < nregions; r++) {
		snprintf(name, sizeof(name), "Region %u", r);
		tally_registry_add_region(reg, name, NULL);
	}
	for (unsigned k = 0; k < ncontests; k++) {
		const char **names = calloc(nregions / ncontests + 1, sizeof(char *));
		char id[16], cname[32];
		uint32_t m = 0;
		tally_contest_reg_t ct = {id, cname, "constituency", NULL, 0};

		for (unsigned r = k; r < nregions; r += ncontests)
			names[m++] = tally_registry_region_name(reg, r);
		snprintf(id, sizeof(id), "C%05u", k);
		snprintf(cname, sizeof(cname), "Constituency %u", k);
		ct.regions = names;
		ct.nregions = m;
		if (tally_registry_add_contest(reg, &ct, NULL) != TALLY_REFUSAL_NONE) {
			fprintf(stderr, "tally-bench: contest %u refused\n", k);
			return 1;
		}
		free(names);
	}
	for (unsigned k = 0; k < ncand; k++) {
		char id[16];
		tally_candidate_reg_t cr = {fixture_candidate_id(k), name, party, "",
		                            ncontests > 0 ? id : NULL};

		snprintf(id, sizeof(id), "C%05u", k / 5);
		snprintf(name, sizeof(name), "Candidate %u", k);
		snprintf(party, sizeof(party), "Party %u", ncontests > 0 ? k % 5 : k % 8);
		tally_registry_add_candidate(reg, &cr, NULL);
	}
	fixture_add_voters(reg, 0, nvoters, nregions);
	if ((votes = malloc(nvoters * sizeof(*votes))) == NULL) {
		fprintf(stderr, "tally-bench: out of memory for %" PRIu64 " votes\n", nvoters);
		return 1;
	}
	for (uint64_t i = 0; i < nvoters; i++) {
		uint64_t voter = fixture_mix(i * 31 + 7) % nvoters;

		fixture_vote(&votes[i], voter, (uint32_t)(fixture_mix(voter) % ncand));
		if (ncontests > 0) {
			/* For a candidate of the voter's own constituency. */
			uint32_t k = fixture_region_of(voter, nregions) % ncontests;

			votes[i].candidate_id =
			    fixture_candidate_id(k * 5 + (uint32_t)(fixture_mix(voter) % 5));
		}
	}

	/* Scrape latency with the core idle, and the body's size, for reference. */
	{
		tally_core_opts_t o = fixture_core_opts(threads);
		tally_http_opts_t ho = {.max_region_series = 16384};
		tally_core_t *core = tally_core_new(reg, &o, err, sizeof(err));
		tally_http_t *h = tally_http_new(core, &ho, err, sizeof(err));
		char url[64];
		body_t body = {0};
		CURL *cu = curl_easy_init();

		tally_http_start(h, err, sizeof(err));
		snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", (unsigned)tally_http_port(h));
		curl_easy_setopt(cu, CURLOPT_URL, url);
		curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, keep);
		curl_easy_setopt(cu, CURLOPT_WRITEDATA, &body);
		curl_easy_perform(cu);
		series = count_series(body.p);
		bytes = body.len;
		free(body.p);
		memset(&sc, 0, sizeof(sc));
		{
			double lat[200];
			size_t total = 0;

			curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, sink);
			curl_easy_setopt(cu, CURLOPT_WRITEDATA, &total);
			for (int i = 0; i < 200; i++) {
				curl_off_t us = 0;

				curl_easy_perform(cu);
				curl_easy_getinfo(cu, CURLINFO_TOTAL_TIME_T, &us);
				lat[i] = (double)us / 1000.0;
			}
			qsort(lat, 200, sizeof(double), cmp_double);
			idle_p50 = lat[100];
		}
		curl_easy_cleanup(cu);
		tally_http_destroy(h);
		tally_core_destroy(core);
	}

	printf("%" PRIu64 " voters, %u candidates, %u regions: %zu series, /metrics %zu bytes\n",
	       nvoters, ncand, nregions, series, bytes);
	printf("scrape /metrics, core idle: p50 %.2f ms\n", idle_p50);
	sc.contests = ncontests > 0;
	printf("%-10s %12s %10s %14s %8s %9s %9s %9s %8s %8s %8s\n", "run", "votes", "seconds",
	       "votes/s", "scrapes", "p50 ms", "p99 ms", "max ms", "renders", "snap ms", "rend ms");
	for (unsigned rep = 0; rep < repeat; rep++) {
		for (int serve = 0; serve < 2; serve++) {
			tally_http_stats_t st = {0};
			double secs = count_run(reg, votes, nvoters, rounds, threads, serve, gap_ms, &sc, &st);
			uint64_t total = nvoters * rounds;

			if (!serve) {
				printf("%-10s %12" PRIu64 " %10.3f %14.0f\n", "alone", total, secs, total / secs);
				best_alone = secs < best_alone ? secs : best_alone;
				continue;
			}
			qsort(sc.lat_ms, sc.n, sizeof(double), cmp_double);
			if (sc.n > 0) {
				double a = sc.lat_ms[sc.n / 2], b = sc.lat_ms[sc.n * 99 / 100], m = sc.lat_ms[sc.n - 1];

				printf("%-10s %12" PRIu64 " %10.3f %14.0f %8zu %9.2f %9.2f %9.2f %8" PRIu64
				       " %8.2f %8.2f\n", "serving", total, secs, total / secs, sc.n, a, b, m,
				       st.renders, st.renders ? st.snapshot_ns / 1e6 / (double)st.renders : 0.0,
				       st.renders ? st.render_ns / 1e6 / (double)st.renders : 0.0);
				if (secs < best_serve) {
					best_serve = secs;
					p50 = a;
					p99 = b;
					pmax = m;
				}
			}
			free(sc.lat_ms);
			sc.lat_ms = NULL;
		}
	}
	if (ncontests > 0 && sc.contests_n > 0) {
		qsort(sc.contests_ms, sc.contests_n, sizeof(double), cmp_double);
		printf("contests %u: /api/contests (all rows by majority) p50 %.2f ms, p99 %.2f ms, "
		       "max %.2f ms over %zu requests\n", ncontests, sc.contests_ms[sc.contests_n / 2],
		       sc.contests_ms[sc.contests_n * 99 / 100], sc.contests_ms[sc.contests_n - 1],
		       sc.contests_n);
	}
	free(sc.contests_ms);
	printf("http series=%zu scrape_p50_ms=%.2f scrape_p99_ms=%.2f scrape_max_ms=%.2f "
	       "votes_per_s_alone=%.0f votes_per_s_serving=%.0f slowdown_pct=%.1f\n",
	       series, p50, p99, pmax, nvoters * rounds / best_alone, nvoters * rounds / best_serve,
	       100.0 * (best_serve - best_alone) / best_alone);
	free(votes);
	tally_registry_destroy(reg);
	curl_global_cleanup();
	return 0;
}
