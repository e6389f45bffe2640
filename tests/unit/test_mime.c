/*
 * test_mime - lib/mime.c, mime_imap.c, mime_decode.c: BODYSTRUCTURE, BODY and
 * ENVELOPE of a corpus of messages, BODY[section] texts, header access,
 * decoders, dates, and hostile input (deep nesting, 10k parts, unterminated
 * boundaries, huge header lines, random junk) under the sanitizers.
 *
 * The expected strings follow RFC 3501 7.4.2 and were compared with what
 * Dovecot 2.3.19 answers to FETCH for the same messages: they are identical
 * except where noted (a malformed Content-Type is text/plain here as RFC 2045
 * says, where Dovecot sends ("" ""); strings holding '"' are quoted here where
 * Dovecot sends a literal). Every message is also checked in CRLF form: the
 * output must not change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "mem.h"
#include "mime.h"
#include "strbuf.h"

struct corpus_msg {
    const char *name, *msg, *envelope, *bodystructure, *body;
};

static const struct corpus_msg corpus[] = {
    { "plain",
      "From: Alice <alice@example.com>\n"
      "To: Bob <bob@example.org>\n"
      "Subject: Hello\n"
      "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
      "Message-ID: <1@example.com>\n"
      "\n"
      "Hello Bob,\n"
      "how are you?\n",
      /* ENVELOPE */
      "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Hello\" ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Bob\" NIL \"bob\" \"example.org\")) NIL NIL NIL \"<1@example.com>\")",
      /* BODYSTRUCTURE */
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 26 2 NIL NIL NIL NIL)",
      /* BODY */
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 26 2)" },
    { "html",
      "From: =?utf-8?q?J=C3=B6rg?= <jorg@example.de>\n"
      "To: a@b.example\n"
      "Subject: Caf\xc3""\xa9"" menu\n"
      "MIME-Version: 1.0\n"
      "Content-Type: text/html; charset=\"utf-8\"\n"
      "Content-Transfer-Encoding: quoted-printable\n"
      "\n"
      "<p>Caf=C3=A9</p>\n"
      "<p>second line</p>\n",
      /* ENVELOPE */
      "(NIL {10}\r\n"
      "Caf\xc3""\xa9"" menu ((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"jorg\" \"example.de\")) ((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"jorg\" \"example.de\")) ((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"jorg\" \"example.de\")) ((NIL NIL \"a\" \"b.example\")) NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 38 2 NIL NIL NIL NIL)",
      /* BODY */
      "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 38 2)" },
    { "alt",
      "From: a@example.com\n"
      "Subject: alt\n"
      "Content-Type: multipart/alternative; boundary=\"=_alt\"\n"
      "\n"
      "preamble\n"
      "--=_alt\n"
      "Content-Type: text/plain; charset=us-ascii\n"
      "\n"
      "plain version\n"
      "\n"
      "--=_alt\n"
      "Content-Type: text/html; charset=us-ascii\n"
      "\n"
      "<b>html</b>\n"
      "--=_alt--\n"
      "epilogue\n",
      /* ENVELOPE */
      "(NIL \"alt\" ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) NIL NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 1 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"=_alt\") NIL NIL NIL)",
      /* BODY */
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 1)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0) \"alternative\")" },
    { "attach",
      "From: a@example.com\n"
      "To: b@example.com\n"
      "Subject: files\n"
      "Content-Type: multipart/mixed; boundary=mix\n"
      "\n"
      "--mix\n"
      "Content-Type: text/plain; charset=utf-8; format=flowed\n"
      "Content-Transfer-Encoding: 8bit\n"
      "\n"
      "see attached\n"
      "--mix\n"
      "Content-Type: application/pdf; name=\"report.pdf\"\n"
      "Content-Transfer-Encoding: base64\n"
      "Content-Disposition: attachment; filename=\"report.pdf\"; size=12\n"
      "Content-ID: <part1@example.net>\n"
      "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
      "Content-Language: en, de\n"
      "Content-Location: http://example.net/r.pdf\n"
      "Content-Description: The \"report\"\n"
      "\n"
      "JVBERi0xLjQK\n"
      "--mix\n"
      "Content-Type: application/octet-stream\n"
      "Content-Disposition: attachment;\n"
      " filename*0*=utf-8''%E2%82%AC%20ra;\n"
      " filename*1*=tes;\n"
      " filename*2=\".txt\"\n"
      "\n"
      "AAAA\n"
      "--mix\n"
      "Content-Type: text/plain; name*0=\"long\"; name*1=\"name.txt\"\n"
      "Content-Disposition: inline\n"
      "\n"
      "\n"
      "--mix--\n",
      /* ENVELOPE */
      "(NIL \"files\" ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"a\" \"example.com\")) ((NIL NIL \"b\" \"example.com\")) NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "((\"text\" \"plain\" (\"charset\" \"utf-8\" \"format\" \"flowed\") NIL NIL \"8bit\" 12 0 NIL NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"report.pdf\") \"<part1@example.net>\" \"The \\\"report\\\"\" \"base64\" 12 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"attachment\" (\"filename\" \"report.pdf\" \"size\" \"12\")) (\"en\" \"de\") \"http://example.net/r.pdf\")(\"application\" \"octet-stream\" NIL NIL NIL \"7bit\" 4 NIL (\"attachment\" (\"filename*\" \"utf-8''%E2%82%AC%20rates.txt\")) NIL NIL)(\"text\" \"plain\" (\"name\" \"longname.txt\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL (\"inline\" NIL) NIL NIL) \"mixed\" (\"boundary\" \"mix\") NIL NIL NIL)",
      /* BODY */
      "((\"text\" \"plain\" (\"charset\" \"utf-8\" \"format\" \"flowed\") NIL NIL \"8bit\" 12 0)(\"application\" \"pdf\" (\"name\" \"report.pdf\") \"<part1@example.net>\" \"The \\\"report\\\"\" \"base64\" 12)(\"application\" \"octet-stream\" NIL NIL NIL \"7bit\" 4)(\"text\" \"plain\" (\"name\" \"longname.txt\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")" },
    { "rfc822",
      "From: Outer <outer@example.com>\n"
      "Subject: Fwd: inner\n"
      "Content-Type: multipart/mixed; boundary=o\n"
      "\n"
      "--o\n"
      "Content-Type: text/plain\n"
      "\n"
      "forwarding\n"
      "--o\n"
      "Content-Type: message/rfc822\n"
      "Content-Description: Forwarded message\n"
      "\n"
      "From: Inner <inner@example.net>\n"
      "To: x@example.net\n"
      "Subject: inner\n"
      "Date: Mon, 30 Jun 2003 09:00:00 -0400\n"
      "Message-ID: <inner@example.net>\n"
      "Content-Type: multipart/mixed; boundary=i\n"
      "\n"
      "--i\n"
      "Content-Type: text/plain\n"
      "\n"
      "inner text\n"
      "--i\n"
      "Content-Type: image/png\n"
      "Content-Transfer-Encoding: base64\n"
      "\n"
      "iVBORw0KGgo=\n"
      "--i--\n"
      "\n"
      "--o--\n",
      /* ENVELOPE */
      "(NIL \"Fwd: inner\" ((\"Outer\" NIL \"outer\" \"example.com\")) ((\"Outer\" NIL \"outer\" \"example.com\")) ((\"Outer\" NIL \"outer\" \"example.com\")) NIL NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL \"Forwarded message\" \"7bit\" 318 (\"Mon, 30 Jun 2003 09:00:00 -0400\" \"inner\" ((\"Inner\" NIL \"inner\" \"example.net\")) ((\"Inner\" NIL \"inner\" \"example.net\")) ((\"Inner\" NIL \"inner\" \"example.net\")) ((NIL NIL \"x\" \"example.net\")) NIL NIL NIL \"<inner@example.net>\") ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL)(\"image\" \"png\" NIL NIL NIL \"base64\" 12 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"i\") NIL NIL NIL) 17 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"o\") NIL NIL NIL)",
      /* BODY */
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0)(\"message\" \"rfc822\" NIL NIL \"Forwarded message\" \"7bit\" 318 (\"Mon, 30 Jun 2003 09:00:00 -0400\" \"inner\" ((\"Inner\" NIL \"inner\" \"example.net\")) ((\"Inner\" NIL \"inner\" \"example.net\")) ((\"Inner\" NIL \"inner\" \"example.net\")) ((NIL NIL \"x\" \"example.net\")) NIL NIL NIL \"<inner@example.net>\") ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0)(\"image\" \"png\" NIL NIL NIL \"base64\" 12) \"mixed\") 17) \"mixed\")" },
    { "digest",
      "Subject: digest\n"
      "Content-Type: multipart/digest; boundary=d\n"
      "\n"
      "--d\n"
      "\n"
      "Subject: one\n"
      "From: one@example.com\n"
      "\n"
      "first\n"
      "--d\n"
      "Content-Type: text/plain\n"
      "\n"
      "not a message\n"
      "--d--\n",
      /* ENVELOPE */
      "(NIL \"digest\" NIL NIL NIL NIL NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 44 (NIL \"one\" ((NIL NIL \"one\" \"example.com\")) ((NIL NIL \"one\" \"example.com\")) ((NIL NIL \"one\" \"example.com\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 13 0 NIL NIL NIL NIL) \"digest\" (\"boundary\" \"d\") NIL NIL NIL)",
      /* BODY */
      "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 44 (NIL \"one\" ((NIL NIL \"one\" \"example.com\")) ((NIL NIL \"one\" \"example.com\")) ((NIL NIL \"one\" \"example.com\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0) 3)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 13 0) \"digest\")" },
    { "noboundary",
      "Subject: a\n"
      "Content-Type: multipart/mixed\n"
      "\n"
      "hello\n"
      "--x\n"
      "\n"
      "foo\n",
      /* ENVELOPE */
      "(NIL \"a\" NIL NIL NIL NIL NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL)",
      /* BODY */
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")" },
    { "unterminated",
      "Subject: a\n"
      "Content-Type: multipart/mixed; boundary=x\n"
      "\n"
      "--x\n"
      "Content-Type: text/plain\n"
      "\n"
      "no end\n"
      "--x\n"
      "Content-Type: text/html\n"
      "\n"
      "<p>cut",
      /* ENVELOPE */
      "(NIL \"a\" NIL NIL NIL NIL NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"x\") NIL NIL NIL)",
      /* BODY */
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0) \"mixed\")" },
    { "emptyparts",
      "Subject: a\n"
      "Content-Type: multipart/mixed; boundary=x\n"
      "\n"
      "pre\n"
      "--x\n"
      "Content-Type: text/html; charset=utf-8\n"
      "\n"
      "<b>a</b>\n"
      "\n"
      "--x\n"
      "\n"
      "--x\n"
      "Content-Type: text/plain\n"
      "--x--\n"
      "epi\n",
      /* ENVELOPE */
      "(NIL \"a\" NIL NIL NIL NIL NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "((\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 10 1 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"x\") NIL NIL NIL)",
      /* BODY */
      "((\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 10 1)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")" },
    { "badtype",
      "Subject: bad\n"
      "Content-Type: ; charset=x\n"
      "Content-Disposition: attachment; filename=a.txt\n"
      "\n"
      "hello\n",
      /* ENVELOPE */
      "(NIL \"bad\" NIL NIL NIL NIL NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1 NIL (\"attachment\" (\"filename\" \"a.txt\")) NIL NIL)",
      /* BODY */
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1)" },
    { "addresses",
      "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\n"
      "From: \"Doe, John\" <john@example.com>, Mary Smith <@r1,@r2:mary@x.org>\n"
      "Sender: \n"
      "Reply-To: j@x (Johnny Boy)\n"
      "To: undisclosed-recipients:;, A Group: a@b, \"q\"@c;, bare, =?utf-8?q?J=C3=B6rg?= <jorg@example.de>\n"
      "Cc: \"john doe\"@example.com, \"a\\\"b\" <x@y>, <>, x@\n"
      "Bcc: M\xc3""\xbc""ller <m@example.de>\n"
      "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n"
      " folded\n"
      "In-Reply-To: <a@b>\n"
      "Message-ID: <id@host>\n"
      "\n"
      "body\n",
      /* ENVELOPE */
      "(\"Mon, 7 Feb 1994 21:52:25 -0800 (PST)\" \"=?utf-8?q?Gr=C3=BC=C3=9Fe?= folded\" ((\"Doe, John\" NIL \"john\" \"example.com\")(\"Mary Smith\" \"@r1,@r2\" \"mary\" \"x.org\")) ((\"Doe, John\" NIL \"john\" \"example.com\")(\"Mary Smith\" \"@r1,@r2\" \"mary\" \"x.org\")) ((\"Johnny Boy\" NIL \"j\" \"x\")) ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)(NIL NIL \"A Group\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL \"q\" \"c\")(NIL NIL NIL NIL)(NIL NIL \"bare\" \"MISSING_DOMAIN\")(\"=?utf-8?q?J=C3=B6rg?=\" NIL \"jorg\" \"example.de\")) ((NIL NIL \"john doe\" \"example.com\")(\"a\\\"b\" NIL \"x\" \"y\")(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL NIL \"x\" \"MISSING_DOMAIN\")) (({7}\r\n"
      "M\xc3""\xbc""ller NIL \"m\" \"example.de\")) \"<a@b>\" \"<id@host>\")",
      /* BODYSTRUCTURE */
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)",
      /* BODY */
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)" },
    { "headeronly",
      "Subject: no body\n"
      "From: a@b.example",
      /* ENVELOPE */
      "(NIL \"no body\" ((NIL NIL \"a\" \"b.example\")) ((NIL NIL \"a\" \"b.example\")) ((NIL NIL \"a\" \"b.example\")) NIL NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
      /* BODY */
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)" },
    { "nonmime",
      "Subject: not MIME\n"
      "Content-Description: ignored\n"
      "Content-Transfer-Encoding: base64\n"
      "\n"
      "x\n",
      /* ENVELOPE */
      "(NIL \"not MIME\" NIL NIL NIL NIL NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)",
      /* BODY */
      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)" },
    { "closeclose",
      "Subject: close\n"
      "MIME-Version: 1.0\n"
      "Content-Type: multipart/mixed; boundary=o\n"
      "\n"
      "--o\n"
      "Content-Type: message/rfc822\n"
      "\n"
      "Subject: in\n"
      "Content-Type: multipart/alternative; boundary=i\n"
      "\n"
      "--i\n"
      "Content-Type: text/plain\n"
      "\n"
      "x\n"
      "--i--\n"
      "--o\n"
      "Content-Type: multipart/mixed; boundary=j\n"
      "\n"
      "--j\n"
      "\n"
      "y\n"
      "--j--\n"
      "--o--\n",
      /* ENVELOPE */
      "(NIL \"close\" NIL NIL NIL NIL NIL NIL NIL NIL)",
      /* BODYSTRUCTURE */
      "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 107 (NIL \"in\" NIL NIL NIL NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"i\") NIL NIL NIL) 8 NIL NIL NIL NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"j\") NIL NIL NIL) \"mixed\" (\"boundary\" \"o\") NIL NIL NIL)",
      /* BODY */
      "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 107 (NIL \"in\" NIL NIL NIL NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) \"alternative\") 8)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) \"mixed\") \"mixed\")" },
};

/* to_crlf - msg with every LF made CRLF (caller frees) */
static char *to_crlf(const char *msg, size_t *len)
{
    struct strbuf sb = STRBUF_INIT;

    mime_append_crlf(&sb, msg, strlen(msg));
    *len = sb_len(&sb);
    if (sb.data == NULL)
        sb_reset(&sb);
    return sb_detach(&sb);
}

/* structure_of - ENVELOPE, BODYSTRUCTURE and BODY of data[0..len) */
static void structure_of(const char *data, size_t len, struct strbuf *env, struct strbuf *bs,
                         struct strbuf *body)
{
    struct mime_message *m = mime_parse(data, len);

    sb_reset(env), sb_reset(bs), sb_reset(body);
    mime_envelope(m, &m->root, env);
    mime_bodystructure(m, &m->root, true, bs);
    mime_bodystructure(m, &m->root, false, body);
    mime_free(m);
}

static void corpus_structures(void **state)
{
    struct strbuf env = STRBUF_INIT, bs = STRBUF_INIT, body = STRBUF_INIT;

    (void) state;
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        size_t  clen;
        char   *crlf = to_crlf(corpus[i].msg, &clen);

        for (int form = 0; form < 2; form++) {
            if (form == 0)
                structure_of(corpus[i].msg, strlen(corpus[i].msg), &env, &bs, &body);
            else
                structure_of(crlf, clen, &env, &bs, &body);
            print_message("%s (%s)\n", corpus[i].name, form ? "CRLF" : "LF");
            assert_string_equal(sb_str(&env), corpus[i].envelope);
            assert_string_equal(sb_str(&bs), corpus[i].bodystructure);
            assert_string_equal(sb_str(&body), corpus[i].body);
        }
        free(crlf);
    }
    sb_free(&env), sb_free(&bs), sb_free(&body);
}

/* corpus_get - a corpus message by name */
static const char *corpus_get(const char *name)
{
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++)
        if (strcmp(corpus[i].name, name) == 0)
            return corpus[i].msg;
    fail_msg("no corpus message %s", name);
    return NULL;
}

/* section_both - BODY[section] of msg in LF and CRLF form: must agree; returns the text */
static char *section_both(const char *msg, const char *section, int *rc)
{
    struct strbuf out = STRBUF_INIT, out2 = STRBUF_INIT, err = STRBUF_INIT;
    size_t  clen;
    char   *crlf = to_crlf(msg, &clen);
    struct mime_message *m = mime_parse(msg, strlen(msg)), *m2 = mime_parse(crlf, clen);

    sb_reset(&out), sb_reset(&out2);
    *rc = mime_section(m, section, &out, &err);
    assert_int_equal(mime_section(m2, section, &out2, &err), *rc);
    assert_int_equal(sb_len(&out), sb_len(&out2));
    assert_memory_equal(sb_str(&out), sb_str(&out2), sb_len(&out));
    if (*rc < 0)
        assert_true(sb_len(&err) > 0);
    mime_free(m), mime_free(m2);
    free(crlf);
    sb_free(&out2), sb_free(&err);
    return sb_detach(&out);
}

/* check_section - BODY[section] is expected */
static void check_section(const char *msg, const char *section, const char *expected)
{
    int     rc;
    char   *got = section_both(msg, section, &rc);

    print_message("BODY[%s]\n", section);
    assert_int_equal(rc, 0);
    assert_string_equal(got, expected);
    free(got);
}

static void sections(void **state)
{
    const char *r = corpus_get("rfc822"), *a = corpus_get("attach"), *p = corpus_get("plain");

    (void) state;
    check_section(p, "1", "Hello Bob,\r\nhow are you?\r\n");
    check_section(p, "TEXT", "Hello Bob,\r\nhow are you?\r\n");
    check_section(p, "1.1", "");                /* a message's part 1 is itself once only */
    check_section(p, "2", "");
    check_section(p, "HEADER.FIELDS (SUBJECT message-id)",
                  "Subject: Hello\r\nMessage-ID: <1@example.com>\r\n\r\n");
    check_section(p, "header.fields.not (From To Date Message-ID)", "Subject: Hello\r\n\r\n");
    check_section(p, "HEADER.FIELDS (X-None)", "\r\n");
    check_section(p, "HEADER.FIELDS (\"Subject\")", "Subject: Hello\r\n\r\n");
    check_section(r, "1", "forwarding");
    check_section(r, "1.MIME", "Content-Type: text/plain\r\n\r\n");
    check_section(r, "2.MIME", "Content-Type: message/rfc822\r\nContent-Description: Forwarded message\r\n\r\n");
    check_section(r, "2.HEADER.FIELDS (Subject To)", "To: x@example.net\r\nSubject: inner\r\n\r\n");
    check_section(r, "2.1", "inner text");
    check_section(r, "2.1.1", "inner text");    /* a leaf's part 1 is itself, as in Dovecot */
    check_section(r, "2.1.1.1", "");
    check_section(r, "2.2", "iVBORw0KGgo=");
    check_section(r, "2.2.MIME", "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    check_section(r, "2.3", "");
    check_section(r, "1.HEADER", "");           /* not a message/rfc822 part */
    check_section(r, "2.TEXT",
                  "--i\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--i\r\nContent-Type: image/png\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--i--\r\n");
    check_section(corpus_get("addresses"), "HEADER.FIELDS (Subject)",
                  "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n folded\r\n\r\n");
    check_section(p, "1.MIME", "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\n"
                  "Subject: Hello\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <1@example.com>\r\n\r\n");
    check_section(corpus_get("closeclose"), "1.TEXT", "--i\r\nContent-Type: text/plain\r\n\r\nx\r\n--i--\r\n");
    check_section(corpus_get("closeclose"), "2", "--j\r\n\r\ny\r\n--j--\r\n");

    /* empty bodies: the line break before a boundary is not the header's (Dovecot agrees) */
    static const char e1[] = "Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\n"
        "--x\n\n--x\nA: b\n--x\n\n\n--x--\n";

    check_section(e1, "1.MIME", "Content-Type: text/plain\r\n");
    check_section(e1, "2.MIME", "");
    check_section(e1, "3.MIME", "A: b");
    check_section(e1, "4.MIME", "\r\n");
    check_section(e1, "4", "");
    check_section(a, "3", "AAAA");
    check_section(a, "4", "");                  /* header, blank line, empty body */
    check_section(a, "3.MIME",
                  "Content-Type: application/octet-stream\r\nContent-Disposition: attachment;\r\n"
                  " filename*0*=utf-8''%E2%82%AC%20ra;\r\n filename*1*=tes;\r\n filename*2=\".txt\"\r\n\r\n");



    /* BODY[] and HEADER are the whole message and its header */
    int     rc;
    char   *all = section_both(p, "", &rc);
    size_t  clen;
    char   *crlf = to_crlf(p, &clen);

    assert_int_equal(rc, 0);
    assert_string_equal(all, crlf);
    assert_int_equal(mime_crlf_size(p, strlen(p)), clen);
    free(all);
    all = section_both(p, "HEADER", &rc);
    assert_int_equal(rc, 0);
    assert_true(strlen(all) == (size_t) (strstr(crlf, "\r\n\r\n") - crlf) + 4);
    assert_memory_equal(all, crlf, strlen(all));
    free(all);
    free(crlf);
}

static void sections_malformed(void **state)
{
    static const char *const bad[] = {
        "MIME", "0", "1.", "1..2", "01", "1.0", "1.MIMEX", "TEXT.1", "HEADER.", "HEADER.FIELDS",
        "HEADER.FIELDS ()", "HEADER.FIELDS (From", "HEADER.FIELDS(From)", "HEADER.FIELDS (From) x",
        "HEADER.FIELDS (Fr:om)", "HEADER.FIELDS (\"From)", "1.HEADER.FIELDS.NOTX (a)", "X", "1 ", " 1",
        "99999999999999999999", "1.-1", "HEADER.FIELDS (a\r\nb)",
    };
    const char *p = corpus_get("rfc822");

    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int     rc;
        char   *got = section_both(p, bad[i], &rc);

        print_message("BODY[%s]\n", bad[i]);
        assert_int_equal(rc, -1);
        free(got);
    }
}

static void header_access(void **state)
{
    static const char hdr[] =
        "Received: from a\n\tby b\n"
        "Subject :  folded\n   value  \n"
        "X-Empty:\n"
        "junk line without colon\n"
        "Received: second\n"
        "\n"
        "Subject: in the body\n";
    struct strbuf v = STRBUF_INIT;

    (void) state;
    assert_true(mime_header_get(hdr, strlen(hdr), "subject", &v));
    assert_string_equal(sb_str(&v), "folded   value");
    assert_true(mime_header_get(hdr, strlen(hdr), "RECEIVED", &v));
    assert_string_equal(sb_str(&v), "from a\tby b");
    assert_true(mime_header_get(hdr, strlen(hdr), "X-Empty", &v));
    assert_string_equal(sb_str(&v), "");
    assert_false(mime_header_get(hdr, strlen(hdr), "junk line without colon", &v));
    assert_false(mime_header_get(hdr, strlen(hdr), "X-None", &v));
    assert_false(mime_header_get(hdr, 0, "Subject", &v));
    sb_free(&v);
}

struct fields { struct strbuf all; int calls, stop_after; };

/* collect - mime_header_foreach callback */
static bool collect(const char *name, const char *value, void *ctx)
{
    struct fields *f = ctx;

    sb_printf(&f->all, "[%s=%s]", name, value);
    return ++f->calls != f->stop_after;
}

static void header_foreach(void **state)
{
    static const char hdr[] = "A: 1\nB: 2\n 3\nC:\n\nD: body\n";
    struct fields f = { STRBUF_INIT, 0, 0 };

    (void) state;
    mime_header_foreach(hdr, strlen(hdr), collect, &f);
    assert_string_equal(sb_str(&f.all), "[A=1][B=2 3][C=]");
    sb_reset(&f.all);
    f.calls = 0, f.stop_after = 2;
    mime_header_foreach(hdr, strlen(hdr), collect, &f);
    assert_string_equal(sb_str(&f.all), "[A=1][B=2 3]");
    sb_free(&f.all);
}

/* check_2047 - mime_decode_2047(in) is out */
static void check_2047(const char *in, const char *out)
{
    struct strbuf sb = STRBUF_INIT;

    sb_reset(&sb);
    mime_decode_2047(in, strlen(in), &sb);
    print_message("2047: %s\n", in);
    assert_string_equal(sb_str(&sb), out);
    sb_free(&sb);
}

static void decode_2047(void **state)
{
    (void) state;
    check_2047("plain text", "plain text");
    check_2047("=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "Gr\xc3\xbc\xc3\x9f" "e");
    check_2047("=?UTF-8?B?R3LDvMOfZQ==?= und", "Gr\xc3\xbc\xc3\x9f" "e und");
    check_2047("=?iso-8859-1?q?caf=E9?= =?iso-8859-1?q?_au_lait?=", "caf\xc3\xa9 au lait");
    check_2047("=?windows-1252?q?=80_5?=", "\xe2\x82\xac 5");
    check_2047("=?utf-8*en?q?a?=", "a");                        /* RFC 2231 language */
    check_2047("a =?utf-8?q?b?= c", "a b c");
    check_2047("=?koi8-r?b?8NLJ?=", "=?koi8-r?b?8NLJ?=");        /* unknown: kept */
    check_2047("=?utf-8?x?abc?=", "=?utf-8?x?abc?=");            /* bad encoding */
    check_2047("=?utf-8?q?broken", "=?utf-8?q?broken");
    check_2047("=?utf-8?q?a b?=", "=?utf-8?q?a b?=");            /* no space inside a word */
    check_2047("x=?utf-8?q?y?=", "xy");
    check_2047("=?", "=?");
    check_2047("=?utf-8?b?!!!?=", "");                           /* junk base64 decodes to nothing */
}

/* decode_part - mime_decode_body of part path (indices) of msg */
static char *decode_part(const char *msg, size_t child)
{
    struct mime_message *m = mime_parse(msg, strlen(msg));
    struct strbuf out = STRBUF_INIT;
    const struct mime_part *p = m->root.is_multipart ? &m->root.children[child] : &m->root;

    sb_reset(&out);
    mime_decode_body(m, p, &out);
    mime_free(m);
    return sb_detach(&out);
}

static void decode_body(void **state)
{
    static const char msg[] =
        "Content-Type: multipart/mixed; boundary=b\n\n"
        "--b\nContent-Transfer-Encoding: base64\n\naGVs\nbG8g\r\nd29y!!bGQ=\nignored\n"
        "--b\nContent-Transfer-Encoding: Quoted-Printable\n\ncaf=C3=A9 soft=\nbreak =ZZ bad=4 \ntrailing   \nend=\n"
        "--b\nContent-Transfer-Encoding: 8bit\n\nraw =41\n"
        "--b\nContent-Type: multipart/alternative; boundary=c\n\n--c\n\nx\n--c--\n"
        "--b--\n";
    char   *s;

    (void) state;
    s = decode_part(msg, 0);
    assert_string_equal(s, "hello world");
    free(s);
    s = decode_part(msg, 1);
    assert_string_equal(s, "caf\xc3\xa9 softbreak =ZZ bad=4\ntrailing\nend");
    free(s);
    s = decode_part(msg, 2);
    assert_string_equal(s, "raw =41");
    free(s);
    s = decode_part(msg, 3);                    /* a multipart has no content of its own */
    assert_string_equal(s, "");
    free(s);
}

/* check_date - mime_parse_date(in) gives t (or fails when t is -1) */
static void check_date(const char *in, long long t)
{
    time_t  got = 0;
    int     rc = mime_parse_date(in, &got);

    print_message("date: %s\n", in);
    if (t < 0) {
        assert_int_equal(rc, -1);
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal((long long) got, t);
}

static void dates(void **state)
{
    (void) state;
    check_date("Mon, 7 Feb 1994 21:52:25 -0800", 760686745);
    check_date("Mon, 7 Feb 1994 21:52:25 -0800 (PST)", 760686745);
    check_date("7 Feb 1994 21:52:25 -0800", 760686745);         /* no weekday */
    check_date("Mon, 07 Feb 94 21:52:25 PST", 760686745);       /* 2-digit year, named zone */
    check_date("Mon, 7 Feb 1994 21:52 -0800", 760686720);       /* no seconds */
    check_date("Tue, 8 Feb 1994 05:52:25 GMT", 760686745);
    check_date("Tue, 8 Feb 1994 05:52:25 UT", 760686745);
    check_date("Tue, 8 Feb 1994 00:52:25 EST", 760686745);
    check_date("Tue, 8 Feb 1994 05:52:25", 760686745);           /* no zone: UTC */
    check_date("Tue, 8 Feb 1994 05:52:25 Z", 760686745);
    check_date("Sat, 1 Jan 2000 00:00:00 +0000", 946684800);
    check_date("1 Jan 00 00:00 +0000", 946684800);               /* 00 is 2000 */
    check_date("1 Jan 100 00:00 +0000", 946684800);              /* 3-digit year: + 1900 */
    check_date("Thu, 1 Jan 1970 01:00:00 +0100", 0);
    check_date("1 Jan 2038 00:00:00 +0000", 2145916800);
    check_date("31 Dec 2099 23:59:60 +0000", 4102444799);        /* leap second */
    check_date("1-Feb-2020 10:00:00 +0000", 1580551200);
    check_date("", -1);
    check_date("garbage", -1);
    check_date("32 Jan 2000 00:00 +0000", -1);
    check_date("30 Feb 2000 00:00 +0000", -1);
    check_date("1 Foo 2000 00:00 +0000", -1);
    check_date("1 Jan 2000 24:00 +0000", -1);
    check_date("1 Jan 2000 10:60 +0000", -1);
    check_date("1 Jan 2000 10:00 +0099", -1);
    check_date("1 Jan 2000 10:00 +01", -1);
    check_date("1 Jan 2000", -1);
    check_date("1 Jan 99999 10:00 +0000", -1);
}

static void crlf_helpers(void **state)
{
    struct strbuf out = STRBUF_INIT;

    (void) state;
    assert_int_equal(mime_crlf_size("", 0), 0);
    assert_int_equal(mime_crlf_size("a\nb\r\nc\r", 7), 8);
    mime_append_crlf(&out, "\na\nb\r\nc\r", 8);
    assert_int_equal(sb_len(&out), 10);
    assert_memory_equal(sb_str(&out), "\r\na\r\nb\r\nc\r", 10);
    sb_free(&out);
}

/* tree_depth - deepest level under part (iterative bound check: depth <= MIME_MAX_DEPTH) */
static size_t tree_depth(const struct mime_part *p)
{
    size_t  d = 0;

    for (size_t i = 0; i < p->nchildren; i++) {
        size_t  c = tree_depth(&p->children[i]) + 1;

        if (c > d)
            d = c;
    }
    return d;
}

/* tree_count - parts under and including part */
static size_t tree_count(const struct mime_part *p)
{
    size_t  n = 1;

    for (size_t i = 0; i < p->nchildren; i++)
        n += tree_count(&p->children[i]);
    return n;
}

/* exercise - parse data and produce every output, checking the limits */
static void exercise(const char *data, size_t len)
{
    struct mime_message *m = mime_parse(data, len);
    struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;

    assert_true(tree_depth(&m->root) <= MIME_MAX_DEPTH);
    assert_true(tree_count(&m->root) <= MIME_MAX_PARTS);
    assert_int_equal(m->root.end_off, len);
    mime_bodystructure(m, &m->root, true, &out);
    mime_bodystructure(m, &m->root, false, &out);
    mime_envelope(m, &m->root, &out);
    assert_int_equal(mime_section(m, "1.2.3", &out, &err), 0);
    assert_int_equal(mime_section(m, "2.MIME", &out, &err), 0);
    assert_int_equal(mime_section(m, "HEADER.FIELDS (Subject)", &out, &err), 0);
    mime_decode_body(m, &m->root, &out);
    mime_free(m);
    sb_free(&out), sb_free(&err);
}

/* fuzz_mime's find: a group whose last member is junk made ENVELOPE read past the value's NUL */
static void regress_group_junk_at_end(void **state)
{
    static const char msg[] =
        "To: undisclose\xb5" "d-recipients:;\r\nCce\xb5" "d-recipients:;\r\n"
        "Cc: list: a@bm: =?iso-8859-1?b?Y2Fm6Q==?= ef@X>\r@\n<-Long:\r\n folded\r\n\tline\r\n\r\n";

    (void) state;
    exercise(msg, sizeof(msg) - 1);
}

static void hostile_deep(void **state)
{
    struct strbuf s = STRBUF_INIT;

    (void) state;
    for (int i = 0; i < 200; i++)
        sb_printf(&s, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
    sb_puts(&s, "Content-Type: text/plain\n\nleaf\n");
    for (int i = 199; i >= 0; i--)
        sb_printf(&s, "--b%d--\n", i);
    exercise(s.data, sb_len(&s));

    struct mime_message *m = mime_parse(s.data, sb_len(&s));

    assert_int_equal(tree_depth(&m->root), MIME_MAX_DEPTH);
    mime_free(m);

    sb_reset(&s);                               /* message/rfc822 inside message/rfc822 ... */
    for (int i = 0; i < 5000; i++)
        sb_puts(&s, "Content-Type: message/rfc822\n\n");
    sb_puts(&s, "Subject: deepest\n\nbody\n");
    exercise(s.data, sb_len(&s));
    m = mime_parse(s.data, sb_len(&s));
    assert_int_equal(tree_depth(&m->root), MIME_MAX_DEPTH);
    mime_free(m);
    sb_free(&s);
}

static void hostile_many_parts(void **state)
{
    struct strbuf s = STRBUF_INIT;

    (void) state;
    sb_puts(&s, "Content-Type: multipart/mixed; boundary=x\n\n");
    for (int i = 0; i < 10000; i++)
        sb_printf(&s, "--x\nContent-Type: text/plain\n\npart %d\n", i);
    sb_puts(&s, "--x--\n");
    exercise(s.data, sb_len(&s));

    struct mime_message *m = mime_parse(s.data, sb_len(&s));

    assert_int_equal(m->root.nchildren, MIME_MAX_PARTS - 1);
    /* the rest of the message is the multipart's own, boundaries included */
    assert_int_equal(m->root.children[MIME_MAX_PARTS - 2].body_size, 9);   /* "part 1998" */
    assert_int_equal(m->root.end_off, sb_len(&s));
    mime_free(m);
    sb_free(&s);
}

static void hostile_unterminated(void **state)
{
    static const char *const msgs[] = {
        "Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: message/rfc822\n\nContent-Type: multipart/alternative; boundary=c\n\n--c\nSubject: x",
        "Content-Type: multipart/mixed; boundary=\"\"\n\n--\n\n",
        "Content-Type: multipart/mixed; boundary=a\n\n--a--\n--a\n\nafter the end\n",
        "Content-Type: multipart/mixed; boundary=a\n\n--a",
        "Content-Type: message/rfc822\n",
        "\n", "", "\r\n\r\n", "--\n--\n", ":\n \n\t\n:",
        "Content-Type: multipart/mixed; boundary=a\n\n--a\r\n\r\n--a--\r\n",
        "Content-Type: multipart/mixed; boundary*0=a; boundary*1=b\n\n--ab\n\nx\n--ab--\n",
        "Content-Type: text/plain; a*0*=x; a*1*=y; a*3=z; b*1=q; c*=x''y; d=\"unterminated\n\nx",
        "To: (((((((((((((((((((( unbalanced comment\nFrom: \"unterminated\nCc: <<<<a@b\nBcc: a@@b,,@,:;;:<>\n\n",
        "Date: Mon, 7 Feb 1994 21:52:25\nTo: g: h: i@j;;;\nReply-To: <@a,@b,@c>\n\n",
    };

    (void) state;
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        size_t  clen;
        char   *crlf = to_crlf(msgs[i], &clen);

        exercise(msgs[i], strlen(msgs[i]));
        exercise(crlf, clen);
        free(crlf);
    }

    /* RFC 2231 continuations of the boundary itself */
    struct mime_message *m = mime_parse(msgs[11], strlen(msgs[11]));

    assert_int_equal(m->root.nchildren, 1);
    assert_int_equal(m->root.children[0].body_size, 1);
    mime_free(m);
}

static void hostile_huge_lines(void **state)
{
    size_t  n = 4 * 1024 * 1024;
    char   *big = xmalloc(n + 200);
    int     len;

    (void) state;
    len = snprintf(big, 200, "Subject: ");
    memset(big + len, 'a', n);                  /* a 4 MB header line */
    memcpy(big + len + n, "\nContent-Type: multipart/mixed; boundary=q\n\n--q\n\nx\n", 51);
    exercise(big, (size_t) len + n + 51);

    struct mime_message *m = mime_parse(big, (size_t) len + n + 51);
    struct strbuf env = STRBUF_INIT;

    mime_envelope(m, &m->root, &env);           /* a long subject goes as a literal */
    assert_memory_equal(sb_str(&env), "(NIL {4194304}\r\naaaa", 20);
    mime_free(m);
    sb_free(&env);

    /* 4 MB of lines that look almost like the boundaries of 32 open multiparts */
    struct strbuf s = STRBUF_INIT;

    for (int i = 0; i < MIME_MAX_DEPTH; i++)
        sb_printf(&s, "Content-Type: multipart/mixed; boundary=%0100d\n\n--%0100d\n", i, i);
    while (sb_len(&s) < n)
        sb_printf(&s, "--%0100d-\n", 1);
    exercise(s.data, sb_len(&s));
    sb_free(&s);
    free(big);
}

static void hostile_random(void **state)
{
    static const char *const pieces[] = {
        "--a\n", "--a--\n", "--b\n", "\n", "\r\n", "Content-Type: multipart/mixed; boundary=a\n",
        "Content-Type: multipart/digest; boundary=b\n", "Content-Type: message/rfc822\n",
        "Content-Type: text/plain; charset=\"x\n", "From: \"a\" <b@c>, (x\n", "To: g:;\n", " folded\n",
        "=?utf-8?q?x?=", "text", "\x80\xff", "Content-Transfer-Encoding: base64\n", "==\n", "--",
    };
    struct strbuf s = STRBUF_INIT;

    (void) state;
    srandom(1234);
    for (int round = 0; round < 300; round++) {
        sb_reset(&s);
        int     n = (int) (random() % 200);

        for (int i = 0; i < n; i++)
            sb_puts(&s, pieces[random() % (sizeof(pieces) / sizeof(pieces[0]))]);
        exercise(s.data, sb_len(&s));
    }
    sb_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(corpus_structures),
        cmocka_unit_test(sections),
        cmocka_unit_test(sections_malformed),
        cmocka_unit_test(header_access),
        cmocka_unit_test(header_foreach),
        cmocka_unit_test(decode_2047),
        cmocka_unit_test(decode_body),
        cmocka_unit_test(dates),
        cmocka_unit_test(crlf_helpers),
        cmocka_unit_test(regress_group_junk_at_end),
        cmocka_unit_test(hostile_deep),
        cmocka_unit_test(hostile_many_parts),
        cmocka_unit_test(hostile_unterminated),
        cmocka_unit_test(hostile_huge_lines),
        cmocka_unit_test(hostile_random),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
