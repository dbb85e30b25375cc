/* Keeps the support library non-empty. */
typedef int tally_testsupport_empty_t;
