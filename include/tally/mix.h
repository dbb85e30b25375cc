/**
 * @file mix.h
 * @brief The 64-bit mixing the seeded generators share (adapters/generator, tally-sim):
 *        SplitMix64's finaliser, a keyed bijection built on it, and a uniform double.
 *        Pure functions; the same inputs give the same outputs on every machine.
 */
#ifndef TALLY_MIX_H
#define TALLY_MIX_H

#include <stdint.h>

/** The golden-ratio increment of SplitMix64. */
#define TALLY_MIX_GOLDEN 0x9e3779b97f4a7c15ull

/** @brief SplitMix64's finaliser: a bijection of 64-bit values. */
static inline uint64_t
tally_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/** @brief A bijection of x for fixed (seed, tag): distinct x never share a value. */
static inline uint64_t
tally_mix3(uint64_t seed, uint64_t tag, uint64_t x)
{
	return tally_mix64(tally_mix64(seed ^ (tag * 0xd1b54a32d192ed03ull)) + x * TALLY_MIX_GOLDEN);
}

/** @brief The top 53 bits of x as a double in [0, 1). */
static inline double
tally_mix_u01(uint64_t x)
{
	return (double)(x >> 11) * 0x1.0p-53;
}

#endif /* TALLY_MIX_H */
