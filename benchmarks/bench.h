/*
 * tally-bench: one entry point per benchmark. Each prints a fixed-width table and, as its
 * last line, one "name key=value ..." summary.
 */
#ifndef TALLY_BENCH_H
#define TALLY_BENCH_H

int tally_bench_core(int argc, char **argv);
int tally_bench_decode(int argc, char **argv);
int tally_bench_e2e(int argc, char **argv);
int tally_bench_recover(int argc, char **argv);
int tally_bench_clean(int argc, char **argv);
int tally_bench_http(int argc, char **argv);
int tally_bench_latency(int argc, char **argv);
int tally_bench_failover(int argc, char **argv);

#endif
