/**
 * @file error.h
 * @brief tally's one error enum, generated from an X-macro, and its strings.
 *
 * 0 is success; every error is negative so a function may return a count or an error.
 */
#ifndef TALLY_ERROR_H
#define TALLY_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#define TALLY_ERRNO_MAP(XX)                                              \
	XX(NOMEM,    -1, "out of memory")                                \
	XX(INVAL,    -2, "invalid argument")                             \
	XX(EXISTS,   -3, "already registered")                           \
	XX(NOENT,    -4, "not found")                                    \
	XX(FULL,     -5, "capacity exhausted")                           \
	XX(STATE,    -6, "not allowed in the current state")             \
	XX(FORMAT,   -7, "malformed input")                              \
	XX(AGAIN,    -8, "resource temporarily unavailable")             \
	XX(IO,       -9, "input/output error")                           \
	XX(CORRUPT, -10, "data is corrupt or has the wrong version")     \
	XX(CONFIG,  -11, "invalid configuration")                        \
	XX(TIMEDOUT,-12, "timed out")                                    \
	XX(FENCED,  -13, "fenced off by a newer owner")

typedef enum tally_err {
	TALLY_OK = 0,
#define TALLY__ERR_ENUM(name, code, str) TALLY_E##name = (code),
	TALLY_ERRNO_MAP(TALLY__ERR_ENUM)
#undef TALLY__ERR_ENUM
} tally_err_t;

/**
 * @brief Human-readable description of an error code.
 * @returns a static string; never NULL (unknown codes give "unknown error").
 */
const char *tally_err2str(int err);

/**
 * @brief Symbolic name of an error code, e.g. "TALLY_ENOMEM".
 * @returns a static string; never NULL.
 */
const char *tally_err_name(int err);

/**
 * @brief Format a message into errstr (the errstr/errstr_size convention of constructors
 *        that can fail). NULL or a zero size is allowed and writes nothing.
 */
void tally_errstr_set(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** @brief tally_errstr_set() with a va_list. */
void tally_errstr_vset(char *errstr, size_t errstr_size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif /* TALLY_ERROR_H */
