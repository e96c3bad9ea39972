/* Runs each fuzz input on a thread with a CivetWeb worker's stack (WORKER_STACK_BYTES), not on
 * libFuzzer's main thread: with 8 MiB under it, a recursion that overflows a worker's 100 KiB
 * in production goes unnoticed (it did: JSON nested 900 deep crashed the service). */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef void (*fuzz_fn)(const uint8_t *data, size_t size);

/* Calls fn(data, size) on the worker-sized thread and waits for it to return. */
void fuzz_on_worker_stack(fuzz_fn fn, const uint8_t *data, size_t size);
