/* The router and openapi.yaml (as embedded for GET /openapi.json) name the same routes: every
 * operation the document describes is served, and every route served is described. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "openapi.h"
#include "router.h"

static const char *const http_methods[] = {"get", "put", "post", "delete", "patch", "head",
					   "options", "trace"};

static json_t *load_document(void)
{
	json_error_t error;
	json_t *doc = json_loadb((const char *)openapi_json, openapi_json_len, 0, &error);
	cr_assert_not_null(doc, "embedded openapi.json: %s", error.text);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
	return doc;
}

static bool routed(const char *method, const char *path)
{
	size_t n;
	const struct route *routes = router_routes(&n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(routes[i].pattern, path) == 0 && strcasecmp(routes[i].method, method) == 0)
			return true;
	return false;
}

Test(openapi, every_documented_operation_is_routed)
{
	json_t *doc = load_document();
	json_t *paths = json_object_get(doc, "paths");
	cr_assert(json_is_object(paths) && json_object_size(paths) > 0, "no paths");
	const char *path;
	json_t *item;
	json_object_foreach(paths, path, item) {
		int operations = 0;
		for (size_t i = 0; i < sizeof http_methods / sizeof http_methods[0]; i++) {
			if (!json_object_get(item, http_methods[i]))
				continue;
			operations++;
			cr_expect(routed(http_methods[i], path), "documented, not routed: %s %s",
				  http_methods[i], path);
		}
		cr_expect(operations > 0, "a path without operations: %s", path);
	}
	json_decref(doc);
}

Test(openapi, every_route_is_documented)
{
	json_t *doc = load_document();
	json_t *paths = json_object_get(doc, "paths");
	size_t n;
	const struct route *routes = router_routes(&n);
	cr_assert(n > 0);
	for (size_t i = 0; i < n; i++) {
		char method[16];
		size_t len = strlen(routes[i].method);
		cr_assert_lt(len, sizeof method);
		for (size_t k = 0; k <= len; k++)
			method[k] = (char)tolower((unsigned char)routes[i].method[k]);
		json_t *item = json_object_get(paths, routes[i].pattern);
		cr_expect(item && json_object_get(item, method), "routed, not documented: %s %s",
			  routes[i].method, routes[i].pattern);
	}
	json_decref(doc);
}
