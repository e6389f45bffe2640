/*
 * smtpd_check - the SMTP access restrictions, evaluated as Postfix does.
 *
 * Interface (smtpd.h): smtpd_check_init(), smtpd_check_free(),
 * smtpd_check_run_new(), smtpd_check_run_free(), smtpd_check_eval(),
 * smtpd_check_cancel(), smtpd_check_delayed(), smtpd_canonical_address().
 *
 * Lists. smtpd_client_restrictions, smtpd_helo_restrictions,
 * smtpd_sender_restrictions, smtpd_relay_restrictions,
 * smtpd_recipient_restrictions, smtpd_data_restrictions and
 * smtpd_end_of_data_restrictions are each ordered; the first restriction
 * with a decision ends its list: a permit ends only that list, a reject ends
 * the check. A list that ends without a decision permits. With
 * smtpd_delay_reject = yes (the default) the client, helo and sender lists
 * are evaluated at each RCPT, before the relay and recipient lists, so that
 * a rejection can name the recipient and clients that do not expect a
 * rejection at connect or HELO get one they understand; with no, each runs
 * at its own command. After the lists, at RCPT, an address in our own
 * domains must exist (smtpd_reject_unlisted_recipient): unknown users are
 * refused with 550 5.1.1, never bounced later.
 *
 * Suspension. DNS questions (reject_unknown_*) and policy services
 * (check_policy_service) answer later, and the event loop must never wait.
 * A restriction that needs such an answer starts the lookup and returns
 * CHECK_PENDING; the evaluation stops there, remembering the list and the
 * restriction it stopped at (struct smtpd_check_run, one per session), and
 * smtpd_check_eval() returns SMTPD_CHECK_PENDING. When the answer comes, the
 * run's resume callback tells the session, which calls smtpd_check_eval()
 * again: evaluation continues at the same restriction, which now finds its
 * answer (DNS answers in a small per-session cache, a policy answer in the
 * run) and decides. Every asynchronous restriction follows this one pattern;
 * nothing else in the evaluator knows about it.
 *
 * Deferred verdicts. A temporary DNS failure, DEFER_IF_PERMIT and
 * defer_if_permit do not refuse at once: the check goes on, and only if it
 * would end in a permit is the deferral sent (450), so a later reject still
 * wins with its 5xx. DEFER_IF_REJECT and defer_if_reject turn a later 5xx
 * into their 450.
 *
 * Replies use Postfix's wording: "CODE D.S.N <NAME>: CLASS rejected: TEXT",
 * where NAME and CLASS come from the list being evaluated ("Client host",
 * "Helo command", "Sender address", "Recipient address", "Data command",
 * "End-of-data") or, for check_*_access and the address checks, from what
 * the restriction looked at. Codes follow Postfix's defaults: reject 554,
 * defer 450, non-FQDN 504, invalid HELO 501, unknown domain 450
 * (unknown_address_reject_code), unknown HELO host 450
 * (unknown_hostname_reject_code), null MX 550 5.7.27 / 556 5.1.10.
 *
 * Restrictions are a table of names and functions (restriction_defs); a
 * list is parsed once at start, its table and policy arguments opened then,
 * so an unknown name or a bad table is a fatal configuration error at start
 * (and at postctl check), not a surprise at the first RCPT. As Postfix does,
 * we refuse to start when neither the relay nor the recipient list can ever
 * refuse a foreign destination: that configuration is an open relay.
 *
 * Tables that were just replaced. A 5xx verdict that came from a table (a
 * user, an access map, the login maps) is never based on a stale copy: the
 * tables are looked at first, and when one changed beyond our reach the
 * client gets a 450 while a fresh process with the new tables takes over;
 * otherwise the check runs once more with the tables as they now are.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "access.h"
#include "address.h"
#include "config.h"
#include "directory.h"
#include "dns.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "netmatch.h"
#include "policy_proto.h"
#include "service.h"
#include "strbuf.h"
#include "strlist.h"

#include "smtpd.h"

#define DNS_CACHE_SIZE      16
#define DNS_CACHE_TTL       60          /* seconds a session trusts a DNS verdict */

enum check_result {
    CHECK_DUNNO,                        /* no decision: next restriction */
    CHECK_PERMIT,                       /* this list says yes */
    CHECK_REFUSE,                       /* refused: the reply is set */
    CHECK_PENDING,                      /* an answer is awaited: stop here, resume later */
};

enum list_id { L_CLIENT, L_HELO, L_SENDER, L_RELAY, L_RECIPIENT, L_DATA, L_EOD, L_COUNT };

static const struct {
    const char *param;
    const char *reply_class;
} list_info[L_COUNT] = {
    [L_CLIENT] = {"smtpd_client_restrictions", "Client host"},
    [L_HELO] = {"smtpd_helo_restrictions", "Helo command"},
    [L_SENDER] = {"smtpd_sender_restrictions", "Sender address"},
    [L_RELAY] = {"smtpd_relay_restrictions", "Recipient address"},
    [L_RECIPIENT] = {"smtpd_recipient_restrictions", "Recipient address"},
    [L_DATA] = {"smtpd_data_restrictions", "Data command"},
    [L_EOD] = {"smtpd_end_of_data_restrictions", "End-of-data"},
};

struct check_ctx;
typedef enum check_result (*restriction_fn)(struct check_ctx *ctx);

/* Flags of a restriction. */
#define R_MAPS          (1u << 0)       /* takes a table argument */
#define R_POLICY        (1u << 1)       /* takes a policy service argument */
#define R_RELAY         (1u << 2)       /* can refuse a foreign destination (open relay test) */
#define R_TABLES        (1u << 3)       /* its 5xx may come from a table: recheck fresh tables */
#define R_ASYNC         (1u << 4)       /* may return CHECK_PENDING */
#define R_DNS           (1u << 5)       /* needs the resolver */

struct restriction_def {
    const char *name;
    restriction_fn fn;
    unsigned flags;
};

struct restriction_item {
    const struct restriction_def *def;
    struct maplist *maps;               /* R_MAPS */
    struct smtpd_policy *policy;        /* R_POLICY */
    char   *arg;                        /* the argument as written, for logs */
};

struct restriction_list {
    const char *param;
    struct restriction_item *items;
    size_t  count;
};

struct smtpd_check {
    struct service *svc;
    struct directory *dir;
    struct netmatch *mynetworks;
    struct maplist *login_maps;         /* smtpd_sender_login_maps */
    bool    delay_reject;               /* smtpd_delay_reject */
    bool    reject_unlisted_recipient;  /* smtpd_reject_unlisted_recipient */
    struct restriction_list lists[L_COUNT];
    struct dns_resolver *dns;           /* NULL unless a list needs DNS */
    int     unknown_address_code;       /* unknown_address_reject_code */
    int     unknown_hostname_code;      /* unknown_hostname_reject_code */
    int     non_fqdn_code;              /* non_fqdn_reject_code */
    int     invalid_hostname_code;      /* invalid_hostname_reject_code */
    int     reject_code;                /* reject_code */
    int     defer_code;                 /* defer_code */
    char   *policy_default_action;      /* smtpd_policy_service_default_action */
    char   *policy_context;             /* smtpd_policy_service_policy_context */
};

/* A deferred verdict: DEFER_IF_PERMIT or DEFER_IF_REJECT with its reply. */
struct deferred {
    bool    active;
    struct strbuf reply;
};

/* One session's evaluation state. */
struct smtpd_check_run {
    struct smtpd_check *chk;
    smtpd_check_resume_fn resume;
    void   *resume_ctx;
    bool    active;                     /* an evaluation is under way (maybe pending) */
    enum smtpd_stage stage;
    size_t  list_i;                     /* position in the stage's lists */
    size_t  item_i;
    bool    cls_done;                   /* the recipient's domain class is known */
    enum domain_class cls;
    bool    rechecked;                  /* the fresh-tables second pass ran */
    bool    refused_by_table;           /* the REFUSE came from an R_TABLES restriction */
    struct deferred dip;                /* defer_if_permit */
    struct deferred dir;                /* defer_if_reject */
    /* Asynchronous answers. */
    struct dns_query *dnsq;
    struct smtpd_policy_req *preq;
    bool    policy_ready;
    bool    policy_failed;
    struct strbuf policy_action;
    struct {
        char    name[256];
        enum dns_status status;
        time_t  when;
    } dns_cache[DNS_CACHE_SIZE];
    unsigned dns_next;                  /* cache slot to fill next */
};

/* What a restriction looks at. */
struct check_ctx {
    struct smtpd_check_run *run;
    struct smtpd_check *chk;
    const struct smtpd_check_input *in;
    enum list_id list;
    const struct restriction_item *item;
    struct strbuf *reply;
};

/* own_domain - local, alias and mailbox class: we are the final destination */
static bool own_domain(enum domain_class cls)
{
    return cls == DOMAIN_LOCAL || cls == DOMAIN_ALIAS || cls == DOMAIN_MAILBOX;
}

/* auth_destination - Postfix's "authorized destination": ours, or a relay domain we back up */
static bool auth_destination(enum domain_class cls)
{
    return own_domain(cls) || cls == DOMAIN_RELAY;
}

/* client_namaddr - "unknown[192.0.2.1]", the client as Postfix names it in replies */
static void client_namaddr(const struct smtpd_client *cl, struct strbuf *out)
{
    sb_reset(out);
    sb_printf(out, "%s[%s]", cl->name ? cl->name : "unknown", cl->addr);
}

/* list_name - the NAME of "<NAME>: CLASS rejected" for the list being evaluated */
static void list_name(struct check_ctx *ctx, struct strbuf *out)
{
    const struct smtpd_check_input *in = ctx->in;

    sb_reset(out);
    switch (ctx->list) {
    case L_CLIENT:
        client_namaddr(in->cl, out);
        break;
    case L_HELO:
        sb_puts(out, in->helo ? in->helo : "");
        break;
    case L_SENDER:
        if (in->sender != NULL)
            sb_puts(out, sb_str(&in->sender->addr));
        break;
    case L_RELAY:
    case L_RECIPIENT:
        if (in->rcpt != NULL)
            sb_puts(out, sb_str(&in->rcpt->addr));
        break;
    case L_DATA:
        sb_puts(out, "DATA");
        break;
    case L_EOD:
    case L_COUNT:
        sb_puts(out, "END-OF-MESSAGE");
        break;
    }
}

/*
 * refuse - set the reply "CODE D.S.N <name>: class rejected: text". Under
 * an active defer_if_reject a 5xx becomes that deferral instead.
 */
static enum check_result refuse(struct check_ctx *ctx, int code, const char *dsn,
                                const char *name, const char *reply_class,
                                const char *text, size_t text_len)
{
    struct strbuf listname = STRBUF_INIT;

    if (name == NULL) {
        list_name(ctx, &listname);
        name = sb_str(&listname);
    }
    if (reply_class == NULL)
        reply_class = list_info[ctx->list].reply_class;
    access_format_reply(ctx->reply, code, dsn, name, reply_class, text, text_len);
    if (code >= 500 && ctx->run->dir.active)
        sb_set(ctx->reply, sb_str(&ctx->run->dir.reply));
    sb_free(&listname);
    return CHECK_REFUSE;
}

/* refuse_text - refuse() with the list's name and class and a C string text */
static enum check_result refuse_text(struct check_ctx *ctx, int code, const char *dsn,
                                     const char *text)
{
    return refuse(ctx, code, dsn, NULL, NULL, text, strlen(text));
}

/* set_deferred - arm defer_if_permit/defer_if_reject with its reply (the first one wins) */
static void set_deferred(struct check_ctx *ctx, struct deferred *d, int code, const char *dsn,
                         const char *name, const char *reply_class, const char *text,
                         size_t text_len)
{
    struct strbuf listname = STRBUF_INIT;

    if (d->active)
        return;
    if (name == NULL) {
        list_name(ctx, &listname);
        name = sb_str(&listname);
    }
    access_format_reply(&d->reply, code, dsn, name,
                        reply_class ? reply_class : list_info[ctx->list].reply_class,
                        text, text_len);
    d->active = true;
    sb_free(&listname);
}

/* Simple restrictions. */

/* r_permit - yes */
static enum check_result r_permit(struct check_ctx *ctx)
{
    (void) ctx;
    return CHECK_PERMIT;
}

/* r_reject - no: reject_code (554) */
static enum check_result r_reject(struct check_ctx *ctx)
{
    return refuse_text(ctx, ctx->chk->reject_code, "5.7.1", "Access denied");
}

/* r_defer - not now: defer_code (450) */
static enum check_result r_defer(struct check_ctx *ctx)
{
    return refuse_text(ctx, ctx->chk->defer_code, "4.7.1", "Access denied");
}

/* r_defer_if_permit - defer if the check would end in a permit */
static enum check_result r_defer_if_permit(struct check_ctx *ctx)
{
    const char *t = "defer_if_permit requested";

    set_deferred(ctx, &ctx->run->dip, ctx->chk->defer_code, "4.7.1", NULL, NULL, t, strlen(t));
    return CHECK_DUNNO;
}

/* r_defer_if_reject - turn a later rejection into a deferral */
static enum check_result r_defer_if_reject(struct check_ctx *ctx)
{
    const char *t = "defer_if_reject requested";

    set_deferred(ctx, &ctx->run->dir, ctx->chk->defer_code, "4.7.1", NULL, NULL, t, strlen(t));
    return CHECK_DUNNO;
}

/* r_permit_mynetworks - the client is in mynetworks */
static enum check_result r_permit_mynetworks(struct check_ctx *ctx)
{
    const struct smtpd_client *cl = ctx->in->cl;

    if (cl->peer_len == 0
        || (cl->peer.ss_family != AF_INET && cl->peer.ss_family != AF_INET6))
        return CHECK_DUNNO;
    return netmatch_sockaddr(ctx->chk->mynetworks, (const struct sockaddr *) &cl->peer)
        ? CHECK_PERMIT : CHECK_DUNNO;
}

/* r_permit_sasl_authenticated - the client logged in with AUTH */
static enum check_result r_permit_sasl_authenticated(struct check_ctx *ctx)
{
    return ctx->in->cl->sasl_username != NULL ? CHECK_PERMIT : CHECK_DUNNO;
}

/* relay_denied - Postfix's wording, the one reply without "CLASS rejected:" */
static enum check_result relay_denied(struct check_ctx *ctx, int code)
{
    sb_reset(ctx->reply);
    sb_printf(ctx->reply, "%d %d.7.1 <%s>: Relay access denied", code, code / 100,
              sb_str(&ctx->in->rcpt->addr));
    if (code >= 500 && ctx->run->dir.active)
        sb_set(ctx->reply, sb_str(&ctx->run->dir.reply));
    return CHECK_REFUSE;
}

/* r_reject_unauth_destination - refuse a domain that is neither ours nor relayed by us */
static enum check_result r_reject_unauth_destination(struct check_ctx *ctx)
{
    if (ctx->in->rcpt == NULL || auth_destination(ctx->run->cls))
        return CHECK_DUNNO;
    return relay_denied(ctx, 554);
}

/* r_defer_unauth_destination - the same, as a temporary error (safe while testing a setup) */
static enum check_result r_defer_unauth_destination(struct check_ctx *ctx)
{
    if (ctx->in->rcpt == NULL || auth_destination(ctx->run->cls))
        return CHECK_DUNNO;
    return relay_denied(ctx, 450);
}

/* r_permit_auth_destination - ours or a relay domain: permit */
static enum check_result r_permit_auth_destination(struct check_ctx *ctx)
{
    return ctx->in->rcpt != NULL && auth_destination(ctx->run->cls) ? CHECK_PERMIT : CHECK_DUNNO;
}

/*
 * r_reject_unauth_pipelining - the client sent commands ahead of our reply
 * without being allowed to: before EHLO told it we pipeline, or behind DATA,
 * whose 354 it must wait for (bulk mailers that talk first fail here).
 */
static enum check_result r_reject_unauth_pipelining(struct check_ctx *ctx)
{
    const struct smtpd_check_input *in = ctx->in;
    bool    esmtp = in->protocol != NULL && strncmp(in->protocol, "ESMTP", 5) == 0;

    if (!in->input_pending)
        return CHECK_DUNNO;
    if (esmtp && (in->command == NULL || strcmp(in->command, "DATA") != 0))
        return CHECK_DUNNO;
    return refuse_text(ctx, 503, "5.5.0", "Improper use of SMTP command pipelining");
}

/* HELO host name checks. */

/* helo_literal - "[...]": an address literal, not a name */
static bool helo_literal(const char *helo)
{
    return helo[0] == '[';
}

/* r_reject_invalid_helo_hostname - bad syntax of the HELO name (or address literal) */
static enum check_result r_reject_invalid_helo_hostname(struct check_ctx *ctx)
{
    const char *helo = ctx->in->helo;
    const char *t;

    if (helo == NULL)
        return CHECK_DUNNO;
    if (helo_literal(helo)) {
        if (access_valid_hostaddr(helo))
            return CHECK_DUNNO;
        t = "invalid ip address";
    } else {
        if (access_valid_hostname(helo) || access_valid_hostaddr(helo))
            return CHECK_DUNNO;
        t = "Invalid name";
    }
    return refuse(ctx, ctx->chk->invalid_hostname_code, "5.5.2", helo, "Helo command", t,
                  strlen(t));
}

/* r_reject_non_fqdn_helo_hostname - the HELO name is not a fully-qualified domain name */
static enum check_result r_reject_non_fqdn_helo_hostname(struct check_ctx *ctx)
{
    const char *helo = ctx->in->helo;
    const char *t = "need fully-qualified hostname";

    if (helo == NULL || helo_literal(helo) || access_is_fqdn(helo))
        return CHECK_DUNNO;
    return refuse(ctx, ctx->chk->non_fqdn_code, "5.5.2", helo, "Helo command", t, strlen(t));
}

/* Address checks. */

/* shown_address - the address as the client wrote it: without the "@myorigin" we added */
static void shown_address(const struct address *a, struct strbuf *out)
{
    const char *addr = sb_str(&a->addr);
    const char *at = strrchr(addr, '@');

    sb_reset(out);
    if ((a->flags & ADDRESS_NO_DOMAIN) && at != NULL)
        sb_append(out, addr, (size_t) (at - addr));
    else
        sb_puts(out, addr);
}

/* non_fqdn - the address has no domain, or one that is not fully qualified */
static enum check_result non_fqdn(struct check_ctx *ctx, const struct address *a,
                                  const char *reply_class)
{
    struct strbuf shown = STRBUF_INIT;
    const char *t = "need fully-qualified address";
    enum check_result res = CHECK_DUNNO;

    if (a == NULL || (a->flags & ADDRESS_NULL))
        return CHECK_DUNNO;
    if ((a->flags & ADDRESS_NO_DOMAIN)
        || (!(a->flags & ADDRESS_LITERAL) && !access_is_fqdn(sb_str(&a->domain)))) {
        shown_address(a, &shown);
        res = refuse(ctx, ctx->chk->non_fqdn_code, "5.5.2", sb_str(&shown), reply_class,
                     t, strlen(t));
    }
    sb_free(&shown);
    return res;
}

/* r_reject_non_fqdn_sender - MAIL FROM without a fully-qualified domain */
static enum check_result r_reject_non_fqdn_sender(struct check_ctx *ctx)
{
    return non_fqdn(ctx, ctx->in->sender, "Sender address");
}

/* r_reject_non_fqdn_recipient - RCPT TO without a fully-qualified domain */
static enum check_result r_reject_non_fqdn_recipient(struct check_ctx *ctx)
{
    return non_fqdn(ctx, ctx->in->rcpt, "Recipient address");
}

/* DNS. */

/* dns_cached - a fresh verdict for name from this session's cache */
static bool dns_cached(struct smtpd_check_run *run, const char *name, enum dns_status *st)
{
    time_t  now = time(NULL);

    for (unsigned i = 0; i < DNS_CACHE_SIZE; i++) {
        if (run->dns_cache[i].name[0] && strcasecmp(run->dns_cache[i].name, name) == 0
            && now - run->dns_cache[i].when < DNS_CACHE_TTL) {
            *st = run->dns_cache[i].status;
            return true;
        }
    }
    return false;
}

/* dns_done - the resolver answered: cache the verdict, resume the session */
static void dns_done(void *arg, enum dns_status status, const char *why)
{
    struct smtpd_check_run *run = arg;
    unsigned slot = run->dns_next++ % DNS_CACHE_SIZE;

    (void) why;
    run->dnsq = NULL;
    run->dns_cache[slot].status = status;
    run->dns_cache[slot].when = time(NULL);
    if (log_verbose_level() > 0)
        msg_verbose("dns: %s: %s (%s)", run->dns_cache[slot].name, dns_status_name(status), why);
    run->resume(run->resume_ctx);
}

/* dns_answer - the mail host verdict for name: true with *st, or false with a lookup started */
static bool dns_answer(struct check_ctx *ctx, const char *name, enum dns_status *st)
{
    struct smtpd_check_run *run = ctx->run;
    unsigned slot = run->dns_next % DNS_CACHE_SIZE;

    if (dns_cached(run, name, st))
        return true;
    if (strlen(name) >= sizeof(run->dns_cache[0].name)) {
        *st = DNS_NOTFOUND;
        return true;
    }
    snprintf(run->dns_cache[slot].name, sizeof(run->dns_cache[slot].name), "%s", name);
    run->dns_cache[slot].when = 0;      /* not valid until the answer is in */
    run->dnsq = dns_mailhost(ctx->chk->dns, name, dns_done, run);
    return false;
}

/*
 * unknown_domain - Postfix's reject_unknown_mailhost: the domain has no MX,
 * A or AAAA record (unknown_address_reject_code), a null MX (it says it takes
 * no mail), or the DNS failed (a deferral, if nothing else rejects).
 */
static enum check_result unknown_domain(struct check_ctx *ctx, const char *domain,
                                        const char *addr, const char *reply_class,
                                        const char *dsn)
{
    enum dns_status st;
    struct strbuf text = STRBUF_INIT;
    enum check_result res = CHECK_DUNNO;
    const char *t = "Domain not found";
    bool    sender = dsn[4] == '8';

    if (!dns_answer(ctx, domain, &st))
        return CHECK_PENDING;
    switch (st) {
    case DNS_OK:
        break;
    case DNS_NOTFOUND:
        res = refuse(ctx, ctx->chk->unknown_address_code, dsn, addr, reply_class, t, strlen(t));
        break;
    case DNS_NULLMX:
        sb_printf(&text, "Domain %s does not accept mail", domain);
        res = refuse(ctx, sender ? 550 : 556, sender ? "5.7.27" : "5.1.10", addr, reply_class,
                     sb_str(&text), sb_len(&text));
        break;
    case DNS_TEMPFAIL:
        set_deferred(ctx, &ctx->run->dip, 450, dsn, addr, reply_class, t, strlen(t));
        break;
    }
    sb_free(&text);
    return res;
}

/* mail_domain_checked - an address whose domain a DNS check makes sense for */
static bool mail_domain_checked(struct check_ctx *ctx, const struct address *a)
{
    enum domain_class cls;

    if (a == NULL || (a->flags & (ADDRESS_NULL | ADDRESS_LITERAL | ADDRESS_NO_DOMAIN)))
        return false;
    if (sb_len(&a->domain) == 0)
        return false;
    /* Postfix asks only when it is not the final destination itself. */
    if (directory_classify(ctx->chk->dir, sb_str(&a->domain), &cls) == DIRECTORY_OK
        && own_domain(cls))
        return false;
    return true;
}

/* r_reject_unknown_sender_domain - the sender's domain does not exist in the DNS */
static enum check_result r_reject_unknown_sender_domain(struct check_ctx *ctx)
{
    const struct address *a = ctx->in->sender;

    if (!mail_domain_checked(ctx, a))
        return CHECK_DUNNO;
    return unknown_domain(ctx, sb_str(&a->domain), sb_str(&a->addr), "Sender address", "4.1.8");
}

/* r_reject_unknown_recipient_domain - the recipient's domain does not exist in the DNS */
static enum check_result r_reject_unknown_recipient_domain(struct check_ctx *ctx)
{
    const struct address *a = ctx->in->rcpt;

    if (!mail_domain_checked(ctx, a))
        return CHECK_DUNNO;
    return unknown_domain(ctx, sb_str(&a->domain), sb_str(&a->addr), "Recipient address",
                          "4.1.2");
}

/* r_reject_unknown_helo_hostname - the HELO name has no A, AAAA or MX record */
static enum check_result r_reject_unknown_helo_hostname(struct check_ctx *ctx)
{
    const char *helo = ctx->in->helo;
    enum dns_status st;
    const char *t = "Host not found";

    if (helo == NULL || helo_literal(helo) || access_valid_hostaddr(helo))
        return CHECK_DUNNO;
    if (!dns_answer(ctx, helo, &st))
        return CHECK_PENDING;
    if (st == DNS_TEMPFAIL) {
        set_deferred(ctx, &ctx->run->dip, 450, "4.7.1", helo, "Helo command", t, strlen(t));
        return CHECK_DUNNO;
    }
    if (st == DNS_NOTFOUND)
        return refuse(ctx, ctx->chk->unknown_hostname_code, "4.7.1", helo, "Helo command",
                      t, strlen(t));
    return CHECK_DUNNO;
}

/* Users, logins. */

/*
 * user_unknown - in our own domain class cls, must addr resolve to a mailbox
 * or an alias? 0: it does (or the domain is not ours); -1 with the reply.
 */
static int user_unknown(struct check_ctx *ctx, const struct address *a, enum domain_class cls,
                        const char *dsn, const char *reply_class)
{
    struct directory *dir = ctx->chk->dir;
    const char *addr = sb_str(&a->addr);
    struct strbuf value = STRBUF_INIT;
    struct strbuf text = STRBUF_INIT;
    enum map_status st = MAP_NOTFOUND;
    const char *table = NULL;
    int     ret = -1;

    if (!own_domain(cls))
        ret = 0;
    else if (cls == DOMAIN_MAILBOX && (st = directory_mailbox(dir, addr, &value)) == MAP_FOUND)
        ret = 0;
    else if (st != MAP_TEMPFAIL && (st = directory_alias(dir, addr, &value)) == MAP_FOUND)
        ret = 0;
    else if (st == MAP_TEMPFAIL)
        table = "tempfail";
    if (ret == 0) {
        sb_free(&value);
        return 0;
    }
    if (table != NULL) {
        msg_warn("%s: <%s>: user lookup failed: %s", ctx->in->cl->ident, addr,
                 sb_len(&value) ? sb_str(&value) : "(no reason given)");
        /* Postfix's wording for this one has no class. */
        sb_reset(ctx->reply);
        sb_printf(ctx->reply, "451 4.3.0 <%s>: Temporary lookup failure", addr);
    } else {
        table = cls == DOMAIN_MAILBOX ? "virtual mailbox"
            : cls == DOMAIN_ALIAS ? "virtual alias" : "local recipient";
        sb_printf(&text, "User unknown in %s table", table);
        access_format_reply(ctx->reply, 550, dsn, addr, reply_class, sb_str(&text),
                            sb_len(&text));
    }
    sb_free(&value);
    sb_free(&text);
    return -1;
}

/* r_reject_unlisted_recipient - one of our domains, but no such user */
static enum check_result r_reject_unlisted_recipient(struct check_ctx *ctx)
{
    if (ctx->in->rcpt == NULL)
        return CHECK_DUNNO;
    return user_unknown(ctx, ctx->in->rcpt, ctx->run->cls, "5.1.1", "Recipient address") < 0
        ? CHECK_REFUSE : CHECK_DUNNO;
}

/* r_reject_unlisted_sender - the sender claims one of our domains but no such user exists */
static enum check_result r_reject_unlisted_sender(struct check_ctx *ctx)
{
    const struct address *a = ctx->in->sender;
    enum domain_class cls;

    if (a == NULL || (a->flags & ADDRESS_NULL) || sb_len(&a->domain) == 0)
        return CHECK_DUNNO;
    if (directory_classify(ctx->chk->dir, sb_str(&a->domain), &cls) != DIRECTORY_OK) {
        sb_reset(ctx->reply);
        sb_printf(ctx->reply, "451 4.3.0 <%s>: Temporary lookup failure", sb_str(&a->addr));
        return CHECK_REFUSE;
    }
    return user_unknown(ctx, a, cls, "5.1.0", "Sender address") < 0 ? CHECK_REFUSE : CHECK_DUNNO;
}

/* login_owns - is login among the owners (comma/space list) of the sender? */
static bool login_owns(const char *owners, const char *login)
{
    struct strlist names = STRLIST_INIT;
    bool    yes;

    strlist_split(&names, owners);
    yes = strlist_contains_nocase(&names, login);
    strlist_free(&names);
    return yes;
}

/*
 * sender_owners - who owns the sender: MAP_FOUND with the login list in
 * owners, looked up as "user@domain", then "@domain", as Postfix does.
 */
static enum map_status sender_owners(struct check_ctx *ctx, struct strbuf *owners)
{
    struct strbuf key = STRBUF_INIT;
    const struct address *sender = ctx->in->sender;
    enum map_status st;

    st = maplist_lookup(ctx->chk->login_maps, sb_str(&sender->addr), owners);
    if (st == MAP_NOTFOUND && sb_len(&sender->domain) > 0) {
        sb_printf(&key, "@%s", sb_str(&sender->domain));
        st = maplist_lookup(ctx->chk->login_maps, sb_str(&key), owners);
    }
    sb_free(&key);
    return st;
}

/* login_mismatch - the rule behind the *_sender_login_mismatch restrictions */
static enum check_result login_mismatch(struct check_ctx *ctx, bool check_auth, bool check_unauth)
{
    const char *login = ctx->in->cl->sasl_username;
    const char *sender;
    struct strbuf owners = STRBUF_INIT;
    enum map_status st;
    enum check_result res = CHECK_DUNNO;

    /* The null sender (bounces) belongs to nobody. */
    if (ctx->in->sender == NULL || (ctx->in->sender->flags & ADDRESS_NULL))
        return CHECK_DUNNO;
    if (login != NULL ? !check_auth : !check_unauth)
        return CHECK_DUNNO;
    sender = sb_str(&ctx->in->sender->addr);
    st = sender_owners(ctx, &owners);
    sb_reset(ctx->reply);
    if (st == MAP_TEMPFAIL) {
        msg_warn("%s: <%s>: smtpd_sender_login_maps lookup failed: %s", ctx->in->cl->ident,
                 sender, sb_len(&owners) ? sb_str(&owners) : "(no reason given)");
        sb_printf(ctx->reply, "451 4.3.0 <%s>: Sender address rejected: Temporary lookup failure",
                  sender);
        res = CHECK_REFUSE;
    } else if (login != NULL && (st != MAP_FOUND || !login_owns(sb_str(&owners), login))) {
        sb_printf(ctx->reply, "553 5.7.1 <%s>: Sender address rejected: not owned by user %s",
                  sender, login);
        res = CHECK_REFUSE;
    } else if (login == NULL && st == MAP_FOUND) {
        sb_printf(ctx->reply, "553 5.7.1 <%s>: Sender address rejected: not logged in", sender);
        res = CHECK_REFUSE;
    }
    if (res == CHECK_REFUSE && ctx->run->dir.active && sb_str(ctx->reply)[0] == '5')
        sb_set(ctx->reply, sb_str(&ctx->run->dir.reply));
    sb_free(&owners);
    return res;
}

/* r_reject_sender_login_mismatch - both halves below */
static enum check_result r_reject_sender_login_mismatch(struct check_ctx *ctx)
{
    return login_mismatch(ctx, true, true);
}

/* r_reject_authenticated_sender_login_mismatch - a logged-in client uses a sender not its own */
static enum check_result r_reject_authenticated_sender_login_mismatch(struct check_ctx *ctx)
{
    return login_mismatch(ctx, true, false);
}

/* r_reject_unauthenticated_sender_login_mismatch - an owned sender from a client not logged in */
static enum check_result r_reject_unauthenticated_sender_login_mismatch(struct check_ctx *ctx)
{
    return login_mismatch(ctx, false, true);
}

/* Access tables and policy services. */

static enum check_result apply_action(struct check_ctx *ctx, const char *value,
                                      const char *name, const char *reply_class,
                                      const char *where, int depth);

/*
 * apply_restrictions - a table value that names restrictions (Postfix's
 * restriction classes, without the class indirection): only those that need
 * no argument and answer at once; anything else is a configuration error.
 */
static enum check_result apply_restrictions(struct check_ctx *ctx, const char *text,
                                            size_t len, const char *where);

/* apply_action - what a table value or a policy action means here (access(5)) */
static enum check_result apply_action(struct check_ctx *ctx, const char *value,
                                      const char *name, const char *reply_class,
                                      const char *where, int depth)
{
    struct access_action a;

    access_parse(value, &a);
    switch (a.kind) {
    case ACCESS_OK:
        return CHECK_PERMIT;
    case ACCESS_DUNNO:
        return CHECK_DUNNO;
    case ACCESS_REJECT:
    case ACCESS_DEFER:
    case ACCESS_CODE:
        return refuse(ctx, a.code, a.dsn, name, reply_class, a.text, a.text_len);
    case ACCESS_DEFER_IF_PERMIT:
        set_deferred(ctx, &ctx->run->dip, a.code, a.dsn, name, reply_class, a.text, a.text_len);
        return CHECK_DUNNO;
    case ACCESS_DEFER_IF_REJECT:
        set_deferred(ctx, &ctx->run->dir, a.code, a.dsn, name, reply_class, a.text, a.text_len);
        return CHECK_DUNNO;
    case ACCESS_WARN:
        msg_info("%s: warn: %s: %s <%s>: %.*s", ctx->in->cl->ident, where, reply_class, name,
                 (int) (a.text_len > 200 ? 200 : a.text_len), a.text);
        return CHECK_DUNNO;
    case ACCESS_UNSUPPORTED:
        msg_warn("%s: %s: action \"%.60s\" is not supported by this server; ignored",
                 ctx->in->cl->ident, where, a.text);
        return CHECK_DUNNO;
    case ACCESS_RESTRICTIONS:
        if (depth > 0 || a.text_len == 0)
            break;
        return apply_restrictions(ctx, a.text, a.text_len, where);
    }
    msg_warn("%s: %s: unknown action \"%.60s\"", ctx->in->cl->ident, where, value);
    return refuse(ctx, 451, "4.3.5", name, reply_class, "Server configuration error", 26);
}

static const struct restriction_def *find_restriction(const char *name);

/* apply_restrictions - see above */
static enum check_result apply_restrictions(struct check_ctx *ctx, const char *text,
                                            size_t len, const char *where)
{
    struct strlist words = STRLIST_INIT;
    char   *copy = xstrndup(text, len);
    enum check_result res = CHECK_DUNNO;

    strlist_split(&words, copy);
    for (size_t i = 0; i < words.count && res == CHECK_DUNNO; i++) {
        const struct restriction_def *def = find_restriction(words.items[i]);

        if (def == NULL || (def->flags & (R_MAPS | R_POLICY | R_ASYNC))) {
            msg_warn("%s: %s: unknown action or unusable restriction \"%.60s\"",
                     ctx->in->cl->ident, where, words.items[i]);
            res = refuse_text(ctx, 451, "4.3.5", "Server configuration error");
            break;
        }
        res = def->fn(ctx);
    }
    strlist_free(&words);
    free(copy);
    return res;
}

/* table_lookup - the first key found in maps: MAP_FOUND with the value */
static enum map_status table_lookup(struct check_ctx *ctx, const struct strlist *keys,
                                    struct strbuf *value)
{
    for (size_t i = 0; i < keys->count; i++) {
        enum map_status st = maplist_lookup(ctx->item->maps, keys->items[i], value);

        if (st != MAP_NOTFOUND)
            return st;
    }
    return MAP_NOTFOUND;
}

/* check_access - look the keys up in the item's table and apply what is found */
static enum check_result check_access(struct check_ctx *ctx, const struct strlist *keys,
                                      const char *name, const char *reply_class)
{
    struct strbuf value = STRBUF_INIT;
    struct strbuf where = STRBUF_INIT;
    enum check_result res = CHECK_DUNNO;
    enum map_status st = table_lookup(ctx, keys, &value);

    sb_printf(&where, "%s %s", ctx->item->def->name, ctx->item->arg);
    if (st == MAP_TEMPFAIL) {
        msg_warn("%s: %s: lookup failed: %s", ctx->in->cl->ident, sb_str(&where),
                 sb_len(&value) ? sb_str(&value) : "(no reason given)");
        res = refuse(ctx, 451, "4.3.0", name, reply_class, "Temporary lookup failure", 24);
    } else if (st == MAP_FOUND) {
        res = apply_action(ctx, sb_str(&value), name, reply_class, sb_str(&where), 0);
    }
    sb_free(&value);
    sb_free(&where);
    return res;
}

/* r_check_client_access - the client address and its networks */
static enum check_result r_check_client_access(struct check_ctx *ctx)
{
    struct strlist keys = STRLIST_INIT;
    struct strbuf name = STRBUF_INIT;
    enum check_result res;

    if (ctx->in->cl->peer_len == 0)
        return CHECK_DUNNO;
    /* We do no reverse lookups: the client's name is always "unknown", never a key. */
    access_client_keys(ctx->in->cl->addr, &keys);
    client_namaddr(ctx->in->cl, &name);
    res = check_access(ctx, &keys, sb_str(&name), "Client host");
    strlist_free(&keys);
    sb_free(&name);
    return res;
}

/* r_check_helo_access - the HELO name and its parent domains */
static enum check_result r_check_helo_access(struct check_ctx *ctx)
{
    struct strlist keys = STRLIST_INIT;
    enum check_result res;
    const char *helo = ctx->in->helo;

    if (helo == NULL || *helo == 0)
        return CHECK_DUNNO;
    if (helo_literal(helo))
        strlist_add(&keys, helo);
    else
        access_domain_keys(helo, &keys);
    res = check_access(ctx, &keys, helo, "Helo command");
    strlist_free(&keys);
    return res;
}

/* address_access - an address, its domain and parents, its local part */
static enum check_result address_access(struct check_ctx *ctx, const struct address *a,
                                        const char *reply_class)
{
    struct strlist keys = STRLIST_INIT;
    enum check_result res;

    if (a == NULL)
        return CHECK_DUNNO;
    access_address_keys(sb_str(&a->addr), sb_str(&a->local), sb_str(&a->domain),
                        (a->flags & ADDRESS_NULL) != 0, &keys);
    res = check_access(ctx, &keys, sb_str(&a->addr), reply_class);
    strlist_free(&keys);
    return res;
}

/* r_check_sender_access - the sender address */
static enum check_result r_check_sender_access(struct check_ctx *ctx)
{
    return address_access(ctx, ctx->in->sender, "Sender address");
}

/* r_check_recipient_access - the recipient address */
static enum check_result r_check_recipient_access(struct check_ctx *ctx)
{
    return address_access(ctx, ctx->in->rcpt, "Recipient address");
}

/* policy_done - the policy service answered (or failed): resume the session */
static void policy_done(void *arg, const char *action, const char *why)
{
    struct smtpd_check_run *run = arg;

    (void) why;
    run->preq = NULL;
    run->policy_ready = true;
    run->policy_failed = action == NULL;
    sb_set(&run->policy_action, action ? action : "");
    run->resume(run->resume_ctx);
}

/* policy_add - one request attribute (a value the protocol cannot carry is sent empty) */
static void policy_add(struct policy_block *b, const char *name, const char *value)
{
    if (policy_block_add(b, name, value ? value : "") < 0)
        policy_block_add(b, name, "");
}

/* policy_request - the attributes of Postfix's SMTPD_POLICY_README */
static void policy_request(struct check_ctx *ctx, struct policy_block *b)
{
    const struct smtpd_check_input *in = ctx->in;
    const struct smtpd_client *cl = in->cl;
    const char *state = ctx->run->stage == SMTPD_STAGE_EOD ? "END-OF-MESSAGE"
        : in->command ? in->command : "CONNECT";
    char    num[32];

    policy_add(b, "request", "smtpd_access_policy");
    policy_add(b, "protocol_state", state);
    policy_add(b, "protocol_name", in->protocol && strncmp(in->protocol, "ESMTP", 5) == 0
               ? "ESMTP" : "SMTP");
    policy_add(b, "client_address", cl->peer_len ? cl->addr : "");
    policy_add(b, "client_name", cl->name);
    snprintf(num, sizeof(num), "%u", cl->port);
    policy_add(b, "client_port", cl->peer_len ? num : "");
    policy_add(b, "reverse_client_name", cl->name);
    policy_add(b, "server_address", cl->local_addr);
    policy_add(b, "helo_name", in->helo);
    policy_add(b, "sender", in->sender && !(in->sender->flags & ADDRESS_NULL)
               ? sb_str(&in->sender->addr) : "");
    policy_add(b, "recipient", in->rcpt ? sb_str(&in->rcpt->addr) : "");
    snprintf(num, sizeof(num), "%zu", in->rcpt_count);
    policy_add(b, "recipient_count", num);
    policy_add(b, "queue_id", "");
    policy_add(b, "instance", in->instance);
    snprintf(num, sizeof(num), "%lld", in->size > 0 ? in->size : 0);
    policy_add(b, "size", num);
    policy_add(b, "etrn_domain", "");
    policy_add(b, "stress", "");
    policy_add(b, "sasl_method", cl->sasl_method);
    policy_add(b, "sasl_username", cl->sasl_username);
    policy_add(b, "sasl_sender", "");
    policy_add(b, "ccert_subject", "");
    policy_add(b, "ccert_issuer", "");
    policy_add(b, "ccert_fingerprint", "");
    policy_add(b, "ccert_pubkey_fingerprint", "");
    policy_add(b, "encryption_protocol", cl->tls_protocol);
    policy_add(b, "encryption_cipher", cl->tls_cipher);
    snprintf(num, sizeof(num), "%d", cl->tls_bits);
    policy_add(b, "encryption_keysize", cl->tls ? num : "0");
    policy_add(b, "policy_context", ctx->chk->policy_context);
}

/* r_check_policy_service - ask the policy service; its action decides like a table value */
static enum check_result r_check_policy_service(struct check_ctx *ctx)
{
    struct smtpd_check_run *run = ctx->run;
    struct strbuf name = STRBUF_INIT;
    struct strbuf where = STRBUF_INIT;
    enum check_result res;

    if (!run->policy_ready) {
        struct policy_block b;

        memset(&b, 0, sizeof(b));
        policy_request(ctx, &b);
        run->preq = smtpd_policy_ask(ctx->item->policy, &b, policy_done, run);
        policy_block_free(&b);
        return CHECK_PENDING;
    }
    run->policy_ready = false;
    list_name(ctx, &name);
    sb_printf(&where, "check_policy_service %s", ctx->item->arg);
    res = apply_action(ctx, run->policy_failed ? ctx->chk->policy_default_action
                       : sb_str(&run->policy_action), sb_str(&name),
                       list_info[ctx->list].reply_class, sb_str(&where), 0);
    sb_free(&name);
    sb_free(&where);
    return res;
}

static const struct restriction_def restriction_defs[] = {
    {"permit", r_permit, 0},
    {"reject", r_reject, R_RELAY},
    {"defer", r_defer, R_RELAY},
    {"defer_if_permit", r_defer_if_permit, 0},
    {"defer_if_reject", r_defer_if_reject, 0},
    {"permit_mynetworks", r_permit_mynetworks, 0},
    {"permit_sasl_authenticated", r_permit_sasl_authenticated, 0},
    {"reject_unauth_destination", r_reject_unauth_destination, R_RELAY},
    {"defer_unauth_destination", r_defer_unauth_destination, R_RELAY},
    {"permit_auth_destination", r_permit_auth_destination, 0},
    {"reject_unauth_pipelining", r_reject_unauth_pipelining, 0},
    {"reject_invalid_helo_hostname", r_reject_invalid_helo_hostname, 0},
    {"reject_non_fqdn_helo_hostname", r_reject_non_fqdn_helo_hostname, 0},
    {"reject_unknown_helo_hostname", r_reject_unknown_helo_hostname, R_ASYNC | R_DNS},
    {"reject_non_fqdn_sender", r_reject_non_fqdn_sender, 0},
    {"reject_non_fqdn_recipient", r_reject_non_fqdn_recipient, 0},
    {"reject_unknown_sender_domain", r_reject_unknown_sender_domain, R_ASYNC | R_DNS},
    {"reject_unknown_recipient_domain", r_reject_unknown_recipient_domain, R_ASYNC | R_DNS},
    {"reject_unlisted_sender", r_reject_unlisted_sender, R_TABLES},
    {"reject_unlisted_recipient", r_reject_unlisted_recipient, R_TABLES},
    {"reject_sender_login_mismatch", r_reject_sender_login_mismatch, R_TABLES},
    {"reject_authenticated_sender_login_mismatch",
     r_reject_authenticated_sender_login_mismatch, R_TABLES},
    {"reject_unauthenticated_sender_login_mismatch",
     r_reject_unauthenticated_sender_login_mismatch, R_TABLES},
    {"check_client_access", r_check_client_access, R_MAPS | R_TABLES},
    {"check_helo_access", r_check_helo_access, R_MAPS | R_TABLES},
    {"check_sender_access", r_check_sender_access, R_MAPS | R_TABLES},
    {"check_recipient_access", r_check_recipient_access, R_MAPS | R_TABLES},
    {"check_policy_service", r_check_policy_service, R_POLICY | R_ASYNC},
};

#define RESTRICTION_DEF_COUNT (sizeof(restriction_defs) / sizeof(restriction_defs[0]))

/* find_restriction - the table entry called name, or NULL */
static const struct restriction_def *find_restriction(const char *name)
{
    for (size_t i = 0; i < RESTRICTION_DEF_COUNT; i++)
        if (strcmp(restriction_defs[i].name, name) == 0)
            return &restriction_defs[i];
    return NULL;
}

/* where_set - "main.cf:12: " or "" (a default value), to point at the line to fix */
static void where_set(struct config *cfg, const char *param, struct strbuf *out)
{
    int     line = config_line(cfg, param);

    sb_reset(out);
    if (line > 0)
        sb_printf(out, "%s:%d: ", config_path(cfg), line);
}

/* parse_restrictions - the list named param into rl; fatal on an unknown name or bad argument */
static void parse_restrictions(struct smtpd_check *chk, const char *param,
                               struct restriction_list *rl)
{
    struct config *cfg = chk->svc->cfg;
    struct strbuf where = STRBUF_INIT;
    struct strbuf known = STRBUF_INIT;
    struct strbuf tok = STRBUF_INIT;
    struct strbuf err = STRBUF_INIT;
    const char *cp = config_str(cfg, param);
    size_t  cap = 0;
    int     r;

    rl->param = param;
    rl->items = NULL;
    rl->count = 0;
    where_set(cfg, param, &where);
    while ((r = map_token(&cp, &tok, &err)) > 0) {
        const struct restriction_def *def = find_restriction(sb_str(&tok));
        struct restriction_item *it;

        if (def == NULL) {
            for (size_t k = 0; k < RESTRICTION_DEF_COUNT; k++)
                sb_printf(&known, "%s%s", k ? ", " : "", restriction_defs[k].name);
            msg_fatal("%s%s: unknown restriction \"%s\"; known restrictions are: %s",
                      sb_str(&where), param, sb_str(&tok), sb_str(&known));
        }
        if (rl->count == cap) {
            cap = cap ? cap * 2 : 8;
            rl->items = xreallocarray(rl->items, cap, sizeof(*rl->items));
        }
        it = &rl->items[rl->count++];
        memset(it, 0, sizeof(*it));
        it->def = def;
        if (!(def->flags & (R_MAPS | R_POLICY)))
            continue;
        if ((r = map_token(&cp, &tok, &err)) <= 0)
            msg_fatal("%s%s: %s needs an argument (%s)", sb_str(&where), param, def->name,
                      def->flags & R_MAPS ? "a table such as hash:/etc/postern/access"
                      : "unix:private/policy or inet:127.0.0.1:10023");
        it->arg = xstrdup(sb_str(&tok));
        if (def->flags & R_MAPS) {
            if ((it->maps = maplist_open(it->arg, &err)) == NULL)
                msg_fatal("%s%s: %s %s: %s", sb_str(&where), param, def->name, it->arg,
                          sb_str(&err));
            /* Opened while still privileged: the table may live outside the chroot. */
            service_watch_maps(chk->svc, it->maps);
        } else {
            it->policy = smtpd_policy_open(chk->svc, it->arg,
                                           config_time(cfg, "smtpd_policy_service_timeout"),
                                           config_time(cfg, "smtpd_policy_service_max_idle"),
                                           &err);
            if (it->policy == NULL)
                msg_fatal("%s%s: %s", sb_str(&where), param, sb_str(&err));
        }
    }
    if (r < 0)
        msg_fatal("%s%s: %s", sb_str(&where), param, sb_str(&err));
    sb_free(&where);
    sb_free(&known);
    sb_free(&tok);
    sb_free(&err);
}

/* list_has - does a list hold a restriction with one of the flags (or whose name contains what)? */
static bool list_has(const struct restriction_list *rl, unsigned flags, const char *what)
{
    for (size_t i = 0; i < rl->count; i++)
        if ((rl->items[i].def->flags & flags)
            || (what != NULL && strstr(rl->items[i].def->name, what) != NULL))
            return true;
    return false;
}

/* reply_code - a reply code parameter: 4xx or 5xx, else fatal */
static int reply_code(struct config *cfg, const char *param)
{
    long long v = config_int(cfg, param);
    struct strbuf where = STRBUF_INIT;

    if (v < 400 || v > 599) {
        where_set(cfg, param, &where);
        msg_fatal("%s%s = %lld: expected a reply code from 400 to 599", sb_str(&where), param, v);
    }
    sb_free(&where);
    return (int) v;
}

/* smtpd_check_init - tables, mynetworks, restriction lists; fatal on a configuration error */
struct smtpd_check *smtpd_check_init(struct service *svc)
{
    struct smtpd_check *chk = xcalloc(1, sizeof(*chk));
    struct config *cfg = svc->cfg;
    struct strbuf err = STRBUF_INIT;
    struct strbuf where = STRBUF_INIT;
    bool    uses_dns = false;
    bool    uses_login = false;
    struct access_action a;

    chk->svc = svc;
    chk->delay_reject = config_bool(cfg, "smtpd_delay_reject");
    chk->reject_unlisted_recipient = config_bool(cfg, "smtpd_reject_unlisted_recipient");
    chk->unknown_address_code = reply_code(cfg, "unknown_address_reject_code");
    chk->unknown_hostname_code = reply_code(cfg, "unknown_hostname_reject_code");
    chk->non_fqdn_code = reply_code(cfg, "non_fqdn_reject_code");
    chk->invalid_hostname_code = reply_code(cfg, "invalid_hostname_reject_code");
    chk->reject_code = reply_code(cfg, "reject_code");
    chk->defer_code = reply_code(cfg, "defer_code");
    chk->policy_default_action = xstrdup(config_str(cfg, "smtpd_policy_service_default_action"));
    chk->policy_context = xstrdup(config_str(cfg, "smtpd_policy_service_policy_context"));
    access_parse(chk->policy_default_action, &a);
    if (a.kind == ACCESS_RESTRICTIONS || a.kind == ACCESS_UNSUPPORTED) {
        where_set(cfg, "smtpd_policy_service_default_action", &where);
        msg_fatal("%ssmtpd_policy_service_default_action = %s: expected an access action such "
                  "as \"451 4.3.5 Server configuration problem\", DEFER, REJECT or DUNNO",
                  sb_str(&where), chk->policy_default_action);
    }
    for (int l = 0; l < L_COUNT; l++) {
        parse_restrictions(chk, list_info[l].param, &chk->lists[l]);
        uses_dns |= list_has(&chk->lists[l], R_DNS, NULL);
        uses_login |= list_has(&chk->lists[l], 0, "sender_login_mismatch");
    }
    if (!list_has(&chk->lists[L_RELAY], R_RELAY, NULL)
        && !list_has(&chk->lists[L_RECIPIENT], R_RELAY, NULL))
        msg_fatal("%s: in parameters smtpd_relay_restrictions or smtpd_recipient_restrictions, "
                  "specify at least one working instance of: reject_unauth_destination, "
                  "defer_unauth_destination or reject (otherwise this server is an open relay)",
                  config_path(cfg));

    chk->mynetworks = netmatch_parse(config_str(cfg, "mynetworks"), &err);
    if (chk->mynetworks == NULL) {
        where_set(cfg, "mynetworks", &where);
        msg_fatal("%smynetworks: %s", sb_str(&where), sb_str(&err));
    }
    /* Opened while still privileged: the tables may live outside the chroot. */
    chk->dir = directory_open(cfg, &err);
    if (chk->dir == NULL)
        msg_fatal("%s: %s", config_path(cfg), sb_str(&err));
    directory_watch(chk->dir, svc);

    chk->login_maps = maplist_open(config_str(cfg, "smtpd_sender_login_maps"), &err);
    if (chk->login_maps == NULL) {
        where_set(cfg, "smtpd_sender_login_maps", &where);
        msg_fatal("%ssmtpd_sender_login_maps: %s", sb_str(&where), sb_str(&err));
    }
    /* A restriction that can never refuse is worse than an error: the admin relies on it. */
    if (maplist_empty(chk->login_maps) && uses_login)
        msg_fatal("%s: a *_sender_login_mismatch restriction is used but "
                  "smtpd_sender_login_maps is empty; set it to a table of sender address -> "
                  "login, e.g. smtpd_sender_login_maps = hash:$config_directory/sender_logins",
                  config_path(cfg));
    service_watch_maps(svc, chk->login_maps);
    if (uses_dns) {
        /* Now, before chroot: /etc/resolv.conf is out of reach afterwards. */
        chk->dns = dns_resolver_create(svc->base, config_str(cfg, "dns_resolver_address"), &err);
        if (chk->dns == NULL) {
            where_set(cfg, "dns_resolver_address", &where);
            msg_fatal("%sdns_resolver_address: %s", sb_str(&where), sb_str(&err));
        }
    }
    sb_free(&err);
    sb_free(&where);
    return chk;
}

/* smtpd_check_free - release tables and lists */
void smtpd_check_free(struct smtpd_check *chk)
{
    if (chk == NULL)
        return;
    directory_close(chk->dir);
    netmatch_free(chk->mynetworks);
    maplist_close(chk->login_maps);
    for (int l = 0; l < L_COUNT; l++) {
        for (size_t i = 0; i < chk->lists[l].count; i++) {
            struct restriction_item *it = &chk->lists[l].items[i];

            if (it->maps != NULL)
                maplist_close(it->maps);
            smtpd_policy_free(it->policy);
            free(it->arg);
        }
        free(chk->lists[l].items);
    }
    dns_resolver_free(chk->dns);
    free(chk->policy_default_action);
    free(chk->policy_context);
    free(chk);
}

/* smtpd_check_delayed - with smtpd_delay_reject the client/helo/sender verdicts wait for RCPT */
bool smtpd_check_delayed(const struct smtpd_check *chk)
{
    return chk->delay_reject;
}

/* smtpd_check_run_new - per-session evaluation state; fn(ctx) resumes a pending check */
struct smtpd_check_run *smtpd_check_run_new(struct smtpd_check *chk, smtpd_check_resume_fn fn,
                                            void *ctx)
{
    struct smtpd_check_run *run = xcalloc(1, sizeof(*run));

    run->chk = chk;
    run->resume = fn;
    run->resume_ctx = ctx;
    sb_init(&run->policy_action);
    sb_init(&run->dip.reply);
    sb_init(&run->dir.reply);
    return run;
}

/* smtpd_check_cancel - forget a pending evaluation (no fn call will come) */
void smtpd_check_cancel(struct smtpd_check_run *run)
{
    if (run == NULL)
        return;
    if (run->dnsq != NULL) {
        dns_cancel(run->dnsq);
        run->dnsq = NULL;
    }
    if (run->preq != NULL) {
        smtpd_policy_cancel(run->preq);
        run->preq = NULL;
    }
    run->policy_ready = false;
    run->active = false;
}

/* smtpd_check_run_free - cancels anything pending */
void smtpd_check_run_free(struct smtpd_check_run *run)
{
    if (run == NULL)
        return;
    smtpd_check_cancel(run);
    sb_free(&run->policy_action);
    sb_free(&run->dip.reply);
    sb_free(&run->dir.reply);
    free(run);
}

/* stage_lists - the lists a stage evaluates, in order */
static size_t stage_lists(const struct smtpd_check *chk, enum smtpd_stage stage,
                          enum list_id out[5])
{
    size_t  n = 0;

    switch (stage) {
    case SMTPD_STAGE_CONNECT:
        if (!chk->delay_reject)
            out[n++] = L_CLIENT;
        break;
    case SMTPD_STAGE_HELO:
        if (!chk->delay_reject)
            out[n++] = L_HELO;
        break;
    case SMTPD_STAGE_MAIL:
        if (!chk->delay_reject)
            out[n++] = L_SENDER;
        break;
    case SMTPD_STAGE_RCPT:
        if (chk->delay_reject) {
            out[n++] = L_CLIENT;
            out[n++] = L_HELO;
            out[n++] = L_SENDER;
        }
        out[n++] = L_RELAY;
        out[n++] = L_RECIPIENT;
        break;
    case SMTPD_STAGE_DATA:
        out[n++] = L_DATA;
        break;
    case SMTPD_STAGE_EOD:
        out[n++] = L_EOD;
        break;
    }
    return n;
}

/* restart - begin the stage's evaluation from its first restriction */
static void restart(struct smtpd_check_run *run, enum smtpd_stage stage)
{
    run->active = true;
    run->stage = stage;
    run->list_i = 0;
    run->item_i = 0;
    run->cls_done = false;
    run->cls = DOMAIN_OTHER;
    run->refused_by_table = false;
    run->policy_ready = false;
    run->dip.active = false;
    run->dir.active = false;
    sb_reset(&run->dip.reply);
    sb_reset(&run->dir.reply);
}

/* eval_stage - go through the stage's lists from where the run stands */
static enum check_result eval_stage(struct smtpd_check_run *run,
                                    const struct smtpd_check_input *in, struct strbuf *reply)
{
    struct smtpd_check *chk = run->chk;
    enum list_id lists[5];
    size_t  n = stage_lists(chk, run->stage, lists);
    struct check_ctx ctx = {run, chk, in, L_CLIENT, NULL, reply};

    if (run->stage == SMTPD_STAGE_RCPT && !run->cls_done) {
        if (directory_classify(chk->dir, sb_str(&in->rcpt->domain), &run->cls) != DIRECTORY_OK) {
            msg_warn("%s: <%s>: domain class lookup failed: a domain table could not be read",
                     in->cl->ident, sb_str(&in->rcpt->addr));
            sb_reset(reply);
            sb_printf(reply, "451 4.3.0 <%s>: Temporary lookup failure", sb_str(&in->rcpt->addr));
            return CHECK_REFUSE;
        }
        run->cls_done = true;
    }
    for (; run->list_i < n; run->list_i++, run->item_i = 0) {
        const struct restriction_list *rl = &chk->lists[lists[run->list_i]];

        ctx.list = lists[run->list_i];
        for (; run->item_i < rl->count; run->item_i++) {
            enum check_result res;

            ctx.item = &rl->items[run->item_i];
            res = ctx.item->def->fn(&ctx);
            if (res == CHECK_DUNNO)
                continue;
            if (res == CHECK_PENDING)
                return CHECK_PENDING;
            if (log_verbose_level() > 0)
                msg_verbose("%s: %s: %s %s", in->cl->ident, rl->param, ctx.item->def->name,
                            res == CHECK_PERMIT ? "permits" : "refuses");
            if (res == CHECK_REFUSE) {
                if (sb_len(reply) < 4)
                    msg_panic("smtpd_check: %s refused without a reply", ctx.item->def->name);
                run->refused_by_table = (ctx.item->def->flags & R_TABLES) != 0;
                return CHECK_REFUSE;
            }
            break;                      /* permit: this list is done */
        }
    }
    if (run->stage == SMTPD_STAGE_RCPT && chk->reject_unlisted_recipient) {
        ctx.list = L_RECIPIENT;
        if (user_unknown(&ctx, in->rcpt, run->cls, "5.1.1", "Recipient address") < 0) {
            run->refused_by_table = true;
            return CHECK_REFUSE;
        }
    }
    if (run->dip.active) {
        sb_set(reply, sb_str(&run->dip.reply));
        return CHECK_REFUSE;
    }
    return CHECK_PERMIT;
}

/* refresh_tables - look at every table now; true if one changed beyond reach */
static bool refresh_tables(struct smtpd_check *chk)
{
    bool    changed = directory_refresh(chk->dir);

    if (maplist_refresh(chk->login_maps))
        changed = true;
    for (int l = 0; l < L_COUNT; l++)
        for (size_t i = 0; i < chk->lists[l].count; i++)
            if (chk->lists[l].items[i].maps != NULL
                && maplist_refresh(chk->lists[l].items[i].maps))
                changed = true;
    return changed;
}

/* smtpd_check_eval - see smtpd.h */
enum smtpd_verdict smtpd_check_eval(struct smtpd_check_run *run, enum smtpd_stage stage,
                                    const struct smtpd_check_input *in, struct strbuf *reply)
{
    if (run->dnsq != NULL || run->preq != NULL)
        msg_panic("smtpd_check_eval: called while a lookup is still pending");
    if (!run->active || run->stage != stage) {
        restart(run, stage);
        run->rechecked = false;
    }
    for (;;) {
        enum check_result res;

        sb_reset(reply);
        res = eval_stage(run, in, reply);
        if (res == CHECK_PENDING)
            return SMTPD_CHECK_PENDING;
        if (res == CHECK_REFUSE && sb_str(reply)[0] == '5' && run->refused_by_table
            && !run->rechecked) {
            /* No permanent verdict from a table that was just replaced. */
            if (refresh_tables(run->chk)) {
                const char *what = in->rcpt ? sb_str(&in->rcpt->addr)
                    : in->sender ? sb_str(&in->sender->addr) : "";

                service_retire(run->chk->svc,
                               "a lookup table changed; a fresh process will use it");
                sb_reset(reply);
                sb_printf(reply, "450 4.3.0 <%s>: %s rejected: lookup table changed; try again",
                          what, in->rcpt ? "Recipient address" : "Sender address");
                run->active = false;
                return SMTPD_CHECK_REJECT;
            }
            restart(run, stage);
            run->rechecked = true;
            continue;
        }
        run->active = false;
        return res == CHECK_REFUSE ? SMTPD_CHECK_REJECT : SMTPD_CHECK_OK;
    }
}

/*
 * smtpd_canonical_address - trailing dot off the domain; "@myorigin" for a
 * bare local part. ADDRESS_NO_DOMAIN stays set: reject_non_fqdn_* judge the
 * address as the client wrote it.
 */
void smtpd_canonical_address(struct address *a, const char *myorigin)
{
    if (a->flags & ADDRESS_NULL)
        return;
    if ((a->flags & ADDRESS_NO_DOMAIN) && myorigin != NULL && *myorigin != 0
        && sb_len(&a->domain) == 0) {
        /* Postfix's append_at_myorigin: "postmaster" is postmaster@$myorigin. */
        sb_putc(&a->addr, '@');
        sb_puts(&a->addr, myorigin);
        sb_set(&a->domain, myorigin);
    }
    if (a->flags & ADDRESS_TRAILING_DOT) {
        /* "example.com." names the same domain; tables hold it without the dot. */
        while (sb_len(&a->domain) > 1 && sb_str(&a->domain)[sb_len(&a->domain) - 1] == '.'
               && sb_len(&a->addr) > 1 && sb_str(&a->addr)[sb_len(&a->addr) - 1] == '.') {
            sb_truncate(&a->domain, sb_len(&a->domain) - 1);
            sb_truncate(&a->addr, sb_len(&a->addr) - 1);
        }
        a->flags &= ~ADDRESS_TRAILING_DOT;
    }
}
