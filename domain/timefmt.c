/* RFC 3339 timestamps by hand: a log line and every API response format several, so this
 * avoids strftime, gmtime_r and the locale. Dates use Howard Hinnant's days-from-civil
 * arithmetic on the proleptic Gregorian calendar. */
#include "timefmt.h"

#include <stddef.h>

/* The formatted range: 1970-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z. */
#define FORMAT_MAX_MS INT64_C(253402300799999)

static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void put2(char *p, int v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
}

void timefmt_format(int64_t unix_ms, char out[TIMEFMT_LEN + 1])
{
	/* Clamped rather than rejected: the callers format clock readings and stored times. */
	if (unix_ms < 0)
		unix_ms = 0;
	if (unix_ms > FORMAT_MAX_MS)
		unix_ms = FORMAT_MAX_MS;

	int64_t secs = unix_ms / 1000, days = secs / 86400;
	int ms = (int)(unix_ms % 1000), sod = (int)(secs % 86400);

	/* civil_from_days, for days >= 0 */
	int64_t z = days + 719468;
	int64_t era = z / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int d = (int)(doy - (153 * mp + 2) / 5 + 1);
	int m = (int)(mp < 10 ? mp + 3 : mp - 9);
	int y = (int)(yoe + era * 400 + (m <= 2));

	put2(out, y / 100);
	put2(out + 2, y % 100);
	out[4] = '-';
	put2(out + 5, m);
	out[7] = '-';
	put2(out + 8, d);
	out[10] = 'T';
	put2(out + 11, sod / 3600);
	out[13] = ':';
	put2(out + 14, sod / 60 % 60);
	out[16] = ':';
	put2(out + 17, sod % 60);
	out[19] = '.';
	out[20] = (char)('0' + ms / 100);
	put2(out + 21, ms % 100);
	out[23] = 'Z';
	out[24] = '\0';
}

/* n decimal digits at *p, advancing it; false unless all n are digits. */
static bool digits(const char **p, int n, int *ret)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		unsigned char c = (unsigned char)(*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*ret = v;
	return true;
}

static bool expect(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

static int days_in_month(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

bool timefmt_parse(const char *s, int64_t *ret_unix_ms)
{
	const char *p = s;
	int y, mo, d, h, mi, sec, ms = 0, off = 0;

	if (!digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) || !expect(&p, '-') ||
	    !digits(&p, 2, &d))
		return false;
	if (*p != 'T' && *p != 't')
		return false;
	p++;
	/* Leap seconds (:60) are refused, as Go and Python do: Unix time cannot name them. */
	if (!digits(&p, 2, &h) || !expect(&p, ':') || !digits(&p, 2, &mi) || !expect(&p, ':') ||
	    !digits(&p, 2, &sec))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
		return false;

	if (*p == '.') {
		p++;
		int n = 0;
		for (; *p >= '0' && *p <= '9'; p++, n++) {
			if (n < 3)
				ms = ms * 10 + (*p - '0');
		}
		if (n < 1 || n > 9)
			return false;
		for (; n < 3; n++)
			ms *= 10;
	}

	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (!digits(&p, 2, &oh) || !expect(&p, ':') || !digits(&p, 2, &om) || oh > 23 ||
		    om > 59)
			return false;
		off = sign * (oh * 60 + om) * 60;
	} else {
		return false;
	}
	if (*p != '\0')
		return false;

	int64_t secs = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 +
		       sec - off;
	*ret_unix_ms = secs * 1000 + ms;
	return true;
}
