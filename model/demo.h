/*
 * demo.h: a random RoFormer-Sim for first runs without a real checkpoint.
 *
 * rf_demo_write() creates a Hugging Face style model directory (config.json,
 * vocab.txt copied from vocab_path, model.safetensors with roformer.* names)
 * of the released small architecture (6 layers, hidden 384, 6 heads, FFN
 * 1536) with normal(0, 0.02) weights.  It loads and serves like any model,
 * but its vectors and generations mean nothing.  The directory is written
 * under a temporary name and renamed into place, so a crash leaves no half
 * model behind.
 */
#ifndef ROSIM_DEMO_H
#define ROSIM_DEMO_H

#include <stdint.h>

#include "error.h"

int rf_demo_write(const char *dir, const char *vocab_path, uint64_t seed, struct rs_error *e);

#endif
