/*
 * hash.h: the 64-bit FNV-1a step that model/ hashes with: the vocabulary's
 * table (bytes of a token) and the model's fingerprint (the CRC32C of each
 * weight buffer).  Header only.
 */
#ifndef ROSIM_HASH_H
#define ROSIM_HASH_H

#include <stdint.h>

#define FNV64_OFFSET 1469598103934665603ULL   /* the hash of nothing */

/* h with x folded in: (h xor x) times the FNV prime. */
static inline uint64_t
fnv64_step(uint64_t h, uint64_t x)
{
    return (h ^ x) * 1099511628211ULL;
}

#endif
