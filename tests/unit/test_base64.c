/*
 * test_base64 - lib/base64.c against RFC 4648's test vectors and malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base64.h"
#include "strbuf.h"

static const char *const vectors[][2] = {       /* RFC 4648 section 10 */
    {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

static void rfc_vectors(void **state)
{
    struct strbuf out = STRBUF_INIT;

    (void) state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        sb_reset(&out);
        base64_encode(&out, vectors[i][0], strlen(vectors[i][0]));
        assert_string_equal(sb_str(&out), vectors[i][1]);
        sb_reset(&out);
        assert_int_equal(base64_decode(vectors[i][1], strlen(vectors[i][1]), 0, &out), 0);
        assert_string_equal(sb_str(&out), vectors[i][0]);
    }
    sb_free(&out);
}

static void binary_round_trip(void **state)
{
    unsigned char raw[256];
    struct strbuf enc = STRBUF_INIT, dec = STRBUF_INIT;

    (void) state;
    for (int i = 0; i < 256; i++)
        raw[i] = (unsigned char) i;
    for (size_t n = 0; n <= sizeof(raw); n += 37) {
        sb_reset(&enc);
        sb_reset(&dec);
        base64_encode(&enc, raw, n);
        assert_int_equal(base64_decode(enc.data, sb_len(&enc), 0, &dec), 0);
        assert_int_equal(sb_len(&dec), n);
        assert_memory_equal(dec.data, raw, n);
    }
    sb_free(&enc), sb_free(&dec);
}

static void malformed(void **state)
{
    static const char *const bad[] = {
        "Zg=", "Zg", "Z", "Zm9", "Zh==", "Zm9=v", "Zg===", "=Zg=", "Zm 9v", "Zm9v\n", "Zm-v", "Zg==Zg==",
    };
    struct strbuf out = STRBUF_INIT;

    (void) state;
    sb_set(&out, "kept");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(base64_decode(bad[i], strlen(bad[i]), 0, &out), -1);
        assert_string_equal(sb_str(&out), "kept");       /* nothing appended on failure */
    }
    /* optional padding: "Zg" and "Zm8" are fine, "Z" and non-canonical bits still are not */
    sb_reset(&out);
    assert_int_equal(base64_decode("Zg", 2, BASE64_PADDING_OPTIONAL, &out), 0);
    assert_string_equal(sb_str(&out), "f");
    sb_reset(&out);
    assert_int_equal(base64_decode("Zm8", 3, BASE64_PADDING_OPTIONAL, &out), 0);
    assert_string_equal(sb_str(&out), "fo");
    assert_int_equal(base64_decode("Z", 1, BASE64_PADDING_OPTIONAL, &out), -1);
    assert_int_equal(base64_decode("Zh", 2, BASE64_PADDING_OPTIONAL, &out), -1);
    sb_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc_vectors),
        cmocka_unit_test(binary_round_trip),
        cmocka_unit_test(malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
