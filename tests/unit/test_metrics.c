/* The Prometheus text of histograms and the growing buffer behind GET /metrics. */
#include <criterion/criterion.h>
#include <string.h>

#include "metrics.h"

static const int64_t le[] = {10, 100};
static const struct metrics_bounds bounds = {le, 2, 10};

Test(metrics, histogram_buckets_are_upper_bounds_and_cumulative)
{
	static struct metrics_histogram h;
	const int64_t seen[] = {-5, 0, 10, 11, 100, 101, 5000};
	for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++)
		metrics_observe(&h, &bounds, seen[i]);
	struct metrics_text t = {0};
	metrics_histogram_text(&t, "x_seconds", "route=\"/a\"", &h, &bounds);
	cr_assert_not(t.failed);
	cr_assert_str_eq(t.buf, "x_seconds_bucket{route=\"/a\",le=\"1\"} 3\n"
				"x_seconds_bucket{route=\"/a\",le=\"10\"} 5\n"
				"x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 7\n"
				"x_seconds_sum{route=\"/a\"} 522.200000\n"
				"x_seconds_count{route=\"/a\"} 7\n");
	metrics_text_finish(&t);
}

Test(metrics, histogram_without_labels)
{
	static struct metrics_histogram h;
	struct metrics_text t = {0};
	metrics_histogram_text(&t, "y", "", &h, &bounds);
	cr_assert_str_eq(t.buf, "y_bucket{le=\"1\"} 0\ny_bucket{le=\"10\"} 0\ny_bucket{le=\"+Inf\"} 0\n"
				"y_sum 0.000000\ny_count 0\n");
	metrics_text_finish(&t);
}

Test(metrics, text_grows_past_its_first_block)
{
	char line[3000];
	memset(line, 'a', sizeof line - 1);
	line[sizeof line - 1] = '\0';
	struct metrics_text t = {0};
	for (int i = 0; i < 5; i++)
		metrics_printf(&t, "%d%s\n", i, line);
	cr_assert_not(t.failed);
	cr_assert_eq(t.len, 5 * (1 + sizeof line));
	cr_assert_eq(strlen(t.buf), t.len);
	cr_assert_eq(t.buf[4 * (1 + sizeof line)], '4');
	metrics_text_finish(&t);
	cr_assert_null(t.buf);
	metrics_text_finish(&t);
}
