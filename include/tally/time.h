/**
 * @file time.h
 * @brief Civil-date arithmetic and the timestamp forms votes carry.
 *
 * Times are int64 seconds since 1970-01-01T00:00:00Z; dates are int32 days since 1970-01-01.
 * Everything is proleptic Gregorian and UTC; no time zone database is consulted.
 */
#ifndef TALLY_TIME_H
#define TALLY_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** @brief Days since 1970-01-01 of a civil date; the date must be valid. */
int32_t tally_days_from_civil(int year, unsigned month, unsigned day);

/** @brief Civil date of a day number (inverse of tally_days_from_civil). */
void tally_civil_from_days(int32_t days, int *year, unsigned *month, unsigned *day);

/** @brief true when year-month-day names a real date (leap years included). */
bool tally_date_valid(int year, unsigned month, unsigned day);

/**
 * @brief Parse "YYYY-MM-DD" (a date of birth).
 * @returns true and sets *days on success.
 */
bool tally_date_parse(const char *text, size_t len, int32_t *days);

/**
 * @brief Parse a vote's voting_time: "YYYY-MM-DD HH:MM:SS" (UTC), or ISO-8601
 *        "YYYY-MM-DDTHH:MM:SS" followed by "Z" or "+HH:MM"/"-HH:MM", with optional
 *        fractional seconds (".d+", truncated) in either form.
 * @param err if not NULL, set to a static reason on failure.
 * @returns true and sets *secs (UTC seconds since the epoch) on success.
 */
bool tally_time_parse(const char *text, size_t len, int64_t *secs, const char **err);

/**
 * @brief Format secs as "YYYY-MM-DD HH:MM:SS" (the original's votes_topic form) into buf
 *        (at least 20 bytes). @returns buf.
 */
char *tally_time_format(int64_t secs, char *buf);

/**
 * @brief Format secs as ISO-8601 "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes).
 * @returns buf.
 */
char *tally_time_format_iso(int64_t secs, char *buf);

/** @brief Wall-clock time in microseconds since the epoch. */
int64_t tally_now_us(void);

/** @brief Monotonic time in nanoseconds (for rates and timeouts). */
uint64_t tally_mono_ns(void);

#endif /* TALLY_TIME_H */
