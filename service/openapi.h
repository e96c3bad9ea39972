/* openapi.yaml as JSON, converted and embedded at build time (service/embed_openapi.py), so
 * the document served is the one the build was made from. */
#pragma once

#include <stddef.h>

extern const unsigned char openapi_json[];
extern const size_t openapi_json_len;
