/*
 * Where the integration tests find the services scripts/services started.
 */
#ifndef TALLY_TEST_SERVICES_H
#define TALLY_TEST_SERVICES_H

/*
 * The value of name (TALLY_KAFKA_BROKERS or TALLY_PG_DSN): from the environment if set,
 * else from the env file scripts/services wrote (var/services.env). Aborts the test with a
 * clear message when neither has it. The string lives until the process ends.
 */
const char *tally_test_service(const char *name);

#endif
