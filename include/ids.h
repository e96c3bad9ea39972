/* UUIDv7 ids, strictly increasing within the process (RFC 9562 §6.2, method 2: the random
 * part is a counter bumped by one within a millisecond and reseeded on a new millisecond).
 * Thread-safe. */
#pragma once

#include <stdint.h>

#include "model.h"

/* Writes ID_LEN chars and a NUL into out (ID_LEN + 1 bytes). now_ms is the clock's time. */
void ids_uuidv7(int64_t now_ms, char out[ID_LEN + 1]);
