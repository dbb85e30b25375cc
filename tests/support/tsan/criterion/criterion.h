/*
 * A minimal stand-in for Criterion, used only in ThreadSanitizer builds.
 *
 * Criterion runs each test in a child process through BoxFort, whose inheritable arena
 * cannot be mapped under TSan (Criterion issue #274: "Could not initialize inheritable
 * arena"). Under TALLY_SANITIZER=thread the test sources include this header instead; it
 * provides the macros they use and runs every test in-process, in order, stopping at the
 * first failed assertion. It prints a closing "N passed, N failed" line.
 */
#ifndef TALLY_TSAN_CRITERION_H
#define TALLY_TSAN_CRITERION_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct shim_test {
	const char *suite, *name;
	void (*fn)(void);
	void (*init)(void);
	void (*fini)(void);
	double timeout;
};

struct shim_suite {
	const char *name;
	void (*init)(void);
	void (*fini)(void);
	double timeout;
};

#pragma GCC diagnostic ignored "-Wformat-zero-length"

#define SHIM_MAX 256
static struct shim_test shim_tests[SHIM_MAX];
static struct shim_suite shim_suites[SHIM_MAX];
static int shim_ntests, shim_nsuites;

#define Test(suite_, name_, ...)                                                         \
	static void suite_##_##name_##_impl(void);                                       \
	__attribute__((constructor)) static void suite_##_##name_##_reg(void)            \
	{                                                                                \
		struct shim_test t = {.suite = #suite_, .name = #name_,                  \
		                      .fn = suite_##_##name_##_impl, __VA_ARGS__};       \
		shim_tests[shim_ntests++] = t;                                           \
	}                                                                                \
	static void suite_##_##name_##_impl(void)

#define TestSuite(suite_, ...)                                                           \
	__attribute__((constructor)) static void suite_##_suite_reg(void)                 \
	{                                                                                \
		struct shim_suite s = {.name = #suite_, __VA_ARGS__};                     \
		shim_suites[shim_nsuites++] = s;                                         \
	}

static const char *shim_current = "";

static inline void
shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#include <stdarg.h>
static inline void
shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: %s: assertion failed: %s\n  ", file, line, shim_current, expr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n0 passed, 1 failed\n");
	exit(1);
}

#define cr_assert(cond, ...)                                                              \
	do {                                                                              \
		if (!(cond))                                                              \
			shim_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__);             \
	} while (0)
#define cr_assert_not(cond, ...)        cr_assert(!(cond), __VA_ARGS__)
#define cr_assert_eq(a, b, ...)         cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...)        cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...)         cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...)        cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...)         cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...)        cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_null(p, ...)          cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...)      cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)     cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...)    cr_assert(strcmp((a), (b)) != 0, __VA_ARGS__)
#define cr_assert_float_eq(a, b, eps, ...)                                                \
	cr_assert(((a) - (b)) <= (eps) && ((b) - (a)) <= (eps), __VA_ARGS__)
#define cr_assert_fail(...)             shim_fail(__FILE__, __LINE__, "cr_assert_fail", "" __VA_ARGS__)
/* Expectations stop the run too: under TSan any failure fails the test. */
#define cr_expect                       cr_assert
#define cr_expect_not                   cr_assert_not
#define cr_expect_eq                    cr_assert_eq
#define cr_expect_neq                   cr_assert_neq
#define cr_expect_gt                    cr_assert_gt
#define cr_expect_geq                   cr_assert_geq
#define cr_expect_lt                    cr_assert_lt
#define cr_expect_leq                   cr_assert_leq
#define cr_expect_null                  cr_assert_null
#define cr_expect_not_null              cr_assert_not_null
#define cr_expect_str_eq                cr_assert_str_eq
#define cr_expect_str_neq               cr_assert_str_neq
#define cr_expect_float_eq              cr_assert_float_eq
#define cr_log_info(...)                (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))
#define cr_log_warn                     cr_log_info
#define cr_fatal(...)                   shim_fail(__FILE__, __LINE__, "cr_fatal", "" __VA_ARGS__)
#define cr_skip_test(...)               return

int
main(int argc, char **argv)
{
	int passed = 0;
	char label[256];

	(void)argc;
	(void)argv;
	for (int i = 0; i < shim_ntests; i++) {
		struct shim_test *t = &shim_tests[i];
		struct shim_suite *s = NULL;

		for (int k = 0; k < shim_nsuites; k++)
			if (strcmp(shim_suites[k].name, t->suite) == 0)
				s = &shim_suites[k];
		snprintf(label, sizeof(label), "%s::%s", t->suite, t->name);
		shim_current = label;
		if (s != NULL && s->init != NULL)
			s->init();
		if (t->init != NULL)
			t->init();
		t->fn();
		if (t->fini != NULL)
			t->fini();
		if (s != NULL && s->fini != NULL)
			s->fini();
		fprintf(stderr, "[PASS] %s\n", label);
		passed++;
	}
	printf("%d passed, 0 failed\n", passed);
	return 0;
}

#endif /* TALLY_TSAN_CRITERION_H */
