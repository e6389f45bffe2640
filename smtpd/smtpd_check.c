/*
 * smtpd_check - may this client send from this sender to this recipient?
 *
 * Interface (smtpd.h): smtpd_check_init(), smtpd_check_free(),
 * smtpd_check_mail(), smtpd_check_rcpt(), smtpd_canonical_address().
 *
 * Order, as Postfix: smtpd_sender_restrictions (at RCPT when
 * smtpd_delay_reject = yes, the default, so that a rejection can name the
 * recipient and clients that ignore MAIL rejections still get a reply they
 * understand; at MAIL otherwise); then the recipient's domain is classified
 * (lib/directory.h) and smtpd_relay_restrictions and
 * smtpd_recipient_restrictions are evaluated. Each list is ordered and the
 * first decisive restriction wins for that list (permit ends the list,
 * reject ends the check); a list that ends without a decision permits.
 * Finally, for our own domains (local, alias and mailbox class) the address
 * must exist, whoever the client is: unknown users are refused here with
 * 550 5.1.1, never bounced later.
 *
 * reject_sender_login_mismatch follows Postfix: smtpd_sender_login_maps
 * maps a sender address (or "@domain") to the login names that own it; a
 * sender owned by someone is refused to a client that is not logged in, and
 * a logged-in client may only use senders its login owns ("553 5.7.1
 * <a>: Sender address rejected: not owned by user NAME"). The
 * authenticated_ and unauthenticated_ variants are each half of that.
 *
 * The restrictions are a table of names and functions (restriction_defs);
 * a list is parsed once at start into pointers into that table, so an
 * unknown name is a fatal configuration error at start, not a surprise at
 * the first RCPT, and a new restriction is one function plus one table line.
 * As Postfix does, we refuse to start when neither list can ever refuse a
 * foreign destination: that configuration is an open relay.
 *
 * Replies use Postfix's wording: "554 5.7.1 <a>: Relay access denied",
 * "550 5.1.1 <a>: Recipient address rejected: User unknown in virtual
 * mailbox table", "451 4.3.0 <a>: Temporary lookup failure" (a table could
 * not be read: the client must try again, we must not say the user does not
 * exist).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "address.h"
#include "config.h"
#include "directory.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "netmatch.h"
#include "service.h"
#include "strbuf.h"
#include "strlist.h"

#include "smtpd.h"

enum check_result {
    CHECK_DUNNO,                        /* no decision: next restriction */
    CHECK_PERMIT,                       /* this list says yes */
    CHECK_REFUSE,                       /* refused: the reply is set */
};

/* What a restriction looks at. */
struct check_ctx {
    struct smtpd_check *chk;
    const struct smtpd_client *cl;
    const struct address *sender;       /* NULL: not known yet */
    const struct address *rcpt;         /* NULL: at MAIL */
    enum domain_class cls;
    bool    sender_list;                /* evaluating smtpd_sender_restrictions */
    struct strbuf *reply;
};

typedef enum check_result (*restriction_fn)(struct check_ctx *ctx);

struct restriction_def {
    const char *name;
    restriction_fn fn;
    bool    refuses_relay;              /* can refuse a foreign destination (open relay test) */
};

struct restriction_list {
    const char *param;                  /* "smtpd_relay_restrictions", for messages */
    const struct restriction_def **items;
    size_t  count;
};

struct smtpd_check {
    struct service *svc;
    struct directory *dir;
    struct netmatch *mynetworks;
    struct maplist *login_maps;         /* smtpd_sender_login_maps */
    bool    delay_reject;               /* smtpd_delay_reject */
    struct restriction_list sender;
    struct restriction_list relay;
    struct restriction_list recipient;
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

/* r_permit_mynetworks - the client is in mynetworks */
static enum check_result r_permit_mynetworks(struct check_ctx *ctx)
{
    const struct smtpd_client *cl = ctx->cl;

    if (cl->peer_len == 0
        || (cl->peer.ss_family != AF_INET && cl->peer.ss_family != AF_INET6))
        return CHECK_DUNNO;
    return netmatch_sockaddr(ctx->chk->mynetworks, (const struct sockaddr *) &cl->peer)
        ? CHECK_PERMIT : CHECK_DUNNO;
}

/* r_permit_sasl_authenticated - the client logged in with AUTH */
static enum check_result r_permit_sasl_authenticated(struct check_ctx *ctx)
{
    return ctx->cl->sasl_username != NULL ? CHECK_PERMIT : CHECK_DUNNO;
}

/* r_reject_unauth_destination - refuse a domain that is neither ours nor relayed by us */
static enum check_result r_reject_unauth_destination(struct check_ctx *ctx)
{
    if (ctx->rcpt == NULL || auth_destination(ctx->cls))
        return CHECK_DUNNO;
    sb_printf(ctx->reply, "554 5.7.1 <%s>: Relay access denied", sb_str(&ctx->rcpt->addr));
    return CHECK_REFUSE;
}

/* r_defer_unauth_destination - the same, as a temporary error (safe while testing a setup) */
static enum check_result r_defer_unauth_destination(struct check_ctx *ctx)
{
    if (ctx->rcpt == NULL || auth_destination(ctx->cls))
        return CHECK_DUNNO;
    sb_printf(ctx->reply, "450 4.7.1 <%s>: Relay access denied", sb_str(&ctx->rcpt->addr));
    return CHECK_REFUSE;
}

/* r_permit - yes */
static enum check_result r_permit(struct check_ctx *ctx)
{
    (void) ctx;
    return CHECK_PERMIT;
}

/* r_reject - no */
static enum check_result r_reject(struct check_ctx *ctx)
{
    if (ctx->sender_list || ctx->rcpt == NULL)
        sb_printf(ctx->reply, "554 5.7.1 <%s>: Sender address rejected: Access denied",
                  ctx->sender ? sb_str(&ctx->sender->addr) : "");
    else
        sb_printf(ctx->reply, "554 5.7.1 <%s>: Recipient address rejected: Access denied",
                  sb_str(&ctx->rcpt->addr));
    return CHECK_REFUSE;
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
    enum map_status st;

    st = maplist_lookup(ctx->chk->login_maps, sb_str(&ctx->sender->addr), owners);
    if (st == MAP_NOTFOUND && sb_len(&ctx->sender->domain) > 0) {
        sb_printf(&key, "@%s", sb_str(&ctx->sender->domain));
        st = maplist_lookup(ctx->chk->login_maps, sb_str(&key), owners);
    }
    sb_free(&key);
    return st;
}

/* login_mismatch - the rule behind the *_sender_login_mismatch restrictions */
static enum check_result login_mismatch(struct check_ctx *ctx, bool check_auth, bool check_unauth)
{
    const char *login = ctx->cl->sasl_username;
    const char *sender;
    struct strbuf owners = STRBUF_INIT;
    enum map_status st;
    enum check_result res = CHECK_DUNNO;

    /* The null sender (bounces) belongs to nobody. */
    if (ctx->sender == NULL || (ctx->sender->flags & ADDRESS_NULL))
        return CHECK_DUNNO;
    if (login != NULL ? !check_auth : !check_unauth)
        return CHECK_DUNNO;
    sender = sb_str(&ctx->sender->addr);
    st = sender_owners(ctx, &owners);
    if (st == MAP_TEMPFAIL) {
        msg_warn("%s: <%s>: smtpd_sender_login_maps lookup failed: %s", ctx->cl->ident, sender,
                 sb_len(&owners) ? sb_str(&owners) : "(no reason given)");
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

static const struct restriction_def restriction_defs[] = {
    {"permit_mynetworks", r_permit_mynetworks, false},
    {"permit_sasl_authenticated", r_permit_sasl_authenticated, false},
    {"reject_unauth_destination", r_reject_unauth_destination, true},
    {"defer_unauth_destination", r_defer_unauth_destination, true},
    {"reject_sender_login_mismatch", r_reject_sender_login_mismatch, false},
    {"reject_authenticated_sender_login_mismatch",
     r_reject_authenticated_sender_login_mismatch, false},
    {"reject_unauthenticated_sender_login_mismatch",
     r_reject_unauthenticated_sender_login_mismatch, false},
    {"permit", r_permit, false},
    {"reject", r_reject, true},
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

/* parse_restrictions - the list named param into rl; fatal on an unknown name */
static void parse_restrictions(struct config *cfg, const char *param,
                               struct restriction_list *rl)
{
    struct strlist words = STRLIST_INIT;
    struct strbuf where = STRBUF_INIT;
    struct strbuf known = STRBUF_INIT;

    rl->param = param;
    rl->items = NULL;
    rl->count = 0;
    strlist_split(&words, config_str(cfg, param));
    if (words.count > 0)
        rl->items = xreallocarray(NULL, words.count, sizeof(*rl->items));
    for (size_t i = 0; i < words.count; i++) {
        const struct restriction_def *def = find_restriction(words.items[i]);

        if (def == NULL) {
            for (size_t k = 0; k < RESTRICTION_DEF_COUNT; k++)
                sb_printf(&known, "%s%s", k ? ", " : "", restriction_defs[k].name);
            where_set(cfg, param, &where);
            msg_fatal("%s%s: unknown restriction \"%s\"; known restrictions are: %s",
                      sb_str(&where), param, words.items[i], sb_str(&known));
        }
        rl->items[rl->count++] = def;
    }
    strlist_free(&words);
    sb_free(&where);
    sb_free(&known);
}

/* uses_login_maps - does the list hold a restriction that needs smtpd_sender_login_maps? */
static bool uses_login_maps(const struct restriction_list *rl)
{
    for (size_t i = 0; i < rl->count; i++)
        if (strstr(rl->items[i]->name, "sender_login_mismatch") != NULL)
            return true;
    return false;
}

/* list_refuses_relay - does the list hold anything that can refuse a foreign domain? */
static bool list_refuses_relay(const struct restriction_list *rl)
{
    for (size_t i = 0; i < rl->count; i++)
        if (rl->items[i]->refuses_relay)
            return true;
    return false;
}

/* smtpd_check_init - tables, mynetworks, restriction lists; fatal on a configuration error */
struct smtpd_check *smtpd_check_init(struct service *svc)
{
    struct smtpd_check *chk = xcalloc(1, sizeof(*chk));
    struct strbuf err = STRBUF_INIT;
    struct strbuf where = STRBUF_INIT;

    chk->svc = svc;
    chk->delay_reject = config_bool(svc->cfg, "smtpd_delay_reject");
    parse_restrictions(svc->cfg, "smtpd_sender_restrictions", &chk->sender);
    parse_restrictions(svc->cfg, "smtpd_relay_restrictions", &chk->relay);
    parse_restrictions(svc->cfg, "smtpd_recipient_restrictions", &chk->recipient);
    if (!list_refuses_relay(&chk->relay) && !list_refuses_relay(&chk->recipient))
        msg_fatal("%s: in parameters smtpd_relay_restrictions or smtpd_recipient_restrictions, "
                  "specify at least one working instance of: reject_unauth_destination, "
                  "defer_unauth_destination or reject (otherwise this server is an open relay)",
                  config_path(svc->cfg));

    chk->mynetworks = netmatch_parse(config_str(svc->cfg, "mynetworks"), &err);
    if (chk->mynetworks == NULL) {
        where_set(svc->cfg, "mynetworks", &where);
        msg_fatal("%smynetworks: %s", sb_str(&where), sb_str(&err));
    }
    /* Opened while still privileged: the tables may live outside the chroot. */
    chk->dir = directory_open(svc->cfg, &err);
    if (chk->dir == NULL)
        msg_fatal("%s: %s", config_path(svc->cfg), sb_str(&err));
    directory_watch(chk->dir, svc);

    chk->login_maps = maplist_open(config_str(svc->cfg, "smtpd_sender_login_maps"), &err);
    if (chk->login_maps == NULL) {
        where_set(svc->cfg, "smtpd_sender_login_maps", &where);
        msg_fatal("%ssmtpd_sender_login_maps: %s", sb_str(&where), sb_str(&err));
    }
    /* A restriction that can never refuse is worse than an error: the admin relies on it. */
    if (maplist_empty(chk->login_maps)
        && (uses_login_maps(&chk->sender) || uses_login_maps(&chk->relay)
            || uses_login_maps(&chk->recipient)))
        msg_fatal("%s: a *_sender_login_mismatch restriction is used but "
                  "smtpd_sender_login_maps is empty; set it to a table of sender address -> "
                  "login, e.g. smtpd_sender_login_maps = hash:$config_directory/sender_logins",
                  config_path(svc->cfg));
    service_watch_maps(svc, chk->login_maps);
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
    free(chk->sender.items);
    free(chk->relay.items);
    free(chk->recipient.items);
    free(chk);
}

/* eval_list - the first decisive restriction of the list wins; the end of the list permits */
static enum check_result eval_list(const struct restriction_list *rl, struct check_ctx *ctx)
{
    for (size_t i = 0; i < rl->count; i++) {
        enum check_result res = rl->items[i]->fn(ctx);

        if (res != CHECK_DUNNO) {
            if (log_verbose_level() > 0)
                msg_verbose("%s: <%s>: %s: %s %s", ctx->cl->ident,
                            ctx->rcpt ? sb_str(&ctx->rcpt->addr)
                            : ctx->sender ? sb_str(&ctx->sender->addr) : "",
                            rl->param, rl->items[i]->name,
                            res == CHECK_PERMIT ? "permits" : "refuses");
            return res;
        }
    }
    return CHECK_PERMIT;
}

/* tempfail - a table could not be read: the client tries again later */
static int tempfail(struct check_ctx *ctx, const char *what, const char *why)
{
    const char *addr = sb_str(&ctx->rcpt->addr);

    msg_warn("%s: <%s>: %s lookup failed: %s", ctx->cl->ident, addr, what,
             why && *why ? why : "(no reason given)");
    sb_reset(ctx->reply);
    sb_printf(ctx->reply, "451 4.3.0 <%s>: Temporary lookup failure", addr);
    return -1;
}

/* check_user - in our own domains the address must resolve to a mailbox or an alias */
static int check_user(struct check_ctx *ctx)
{
    struct directory *dir = ctx->chk->dir;
    const char *addr = sb_str(&ctx->rcpt->addr);
    struct strbuf value = STRBUF_INIT;
    enum map_status st;
    const char *table;
    int     ret = 0;

    if (ctx->cls == DOMAIN_MAILBOX) {
        st = directory_mailbox(dir, addr, &value);
        if (st == MAP_FOUND)
            goto done;
        if (st == MAP_TEMPFAIL) {
            ret = tempfail(ctx, "virtual_mailbox_maps", sb_str(&value));
            goto done;
        }
    }
    st = directory_alias(dir, addr, &value);
    if (st == MAP_FOUND)
        goto done;
    if (st == MAP_TEMPFAIL) {
        ret = tempfail(ctx, "virtual_alias_maps", sb_str(&value));
        goto done;
    }
    table = ctx->cls == DOMAIN_MAILBOX ? "virtual mailbox"
        : ctx->cls == DOMAIN_ALIAS ? "virtual alias" : "local recipient";
    sb_reset(ctx->reply);
    sb_printf(ctx->reply, "550 5.1.1 <%s>: Recipient address rejected: User unknown in %s table",
              addr, table);
    ret = -1;
  done:
    sb_free(&value);
    return ret;
}

/* eval_sender - smtpd_sender_restrictions: 0, or -1 with the reply */
static int eval_sender(struct check_ctx *ctx)
{
    enum check_result res;

    ctx->sender_list = true;
    res = eval_list(&ctx->chk->sender, ctx);
    ctx->sender_list = false;
    if (res != CHECK_REFUSE)
        return 0;
    if (sb_len(ctx->reply) < 4)
        msg_panic("smtpd_check: a sender restriction refused without a reply");
    return -1;
}

/* smtpd_check_mail - at MAIL: sender restrictions unless smtpd_delay_reject; 0 or -1 + reply */
int smtpd_check_mail(struct smtpd_check *chk, const struct smtpd_client *cl,
                     const struct address *sender, struct strbuf *reply)
{
    struct check_ctx ctx = {chk, cl, sender, NULL, DOMAIN_OTHER, false, reply};
    int     ret;

    sb_reset(reply);
    if (chk->delay_reject)
        return 0;
    if ((ret = eval_sender(&ctx)) == 0 || sb_str(reply)[0] != '5')
        return ret;
    /* As for recipients: no permanent verdict from a table that was just replaced. */
    if (maplist_refresh(chk->login_maps)) {
        service_retire(chk->svc, "a lookup table changed; a fresh process will use it");
        sb_reset(reply);
        sb_printf(reply, "450 4.3.0 <%s>: Sender address rejected: lookup table changed; "
                  "try again", sb_str(&sender->addr));
        return -1;
    }
    sb_reset(reply);
    return eval_sender(&ctx);
}

/* check_rcpt_once - the verdict with the tables as they are */
static int check_rcpt_once(struct smtpd_check *chk, const struct smtpd_client *cl,
                           const struct address *sender, const struct address *rcpt,
                           struct strbuf *reply)
{
    struct check_ctx ctx = {chk, cl, sender, rcpt, DOMAIN_OTHER, false, reply};

    sb_reset(reply);
    if (directory_classify(chk->dir, sb_str(&rcpt->domain), &ctx.cls) != DIRECTORY_OK)
        return tempfail(&ctx, "domain class", "a domain table could not be read");
    if (chk->delay_reject && eval_sender(&ctx) < 0)
        return -1;
    if (eval_list(&chk->relay, &ctx) == CHECK_REFUSE
        || eval_list(&chk->recipient, &ctx) == CHECK_REFUSE) {
        if (sb_len(reply) < 4)
            msg_panic("smtpd_check_rcpt: a restriction refused without a reply");
        return -1;
    }
    if (own_domain(ctx.cls))
        return check_user(&ctx);
    return 0;
}

/*
 * smtpd_check_rcpt - 0: accept; -1: refused with the reply (4xx/5xx) in reply.
 * A permanent refusal is never based on a table that was just replaced (a
 * user or domain added a moment ago): the tables are looked at first, and
 * when one changed beyond our reach the client is asked to try again while
 * a fresh process with the new tables takes over.
 */
int smtpd_check_rcpt(struct smtpd_check *chk, const struct smtpd_client *cl,
                     const struct address *sender, const struct address *rcpt,
                     struct strbuf *reply)
{
    int     ret = check_rcpt_once(chk, cl, sender, rcpt, reply);
    bool    changed;

    if (ret == 0 || sb_str(reply)[0] != '5')
        return ret;
    changed = directory_refresh(chk->dir);
    if (maplist_refresh(chk->login_maps))
        changed = true;
    if (changed) {
        service_retire(chk->svc, "a lookup table changed; a fresh process will use it");
        sb_reset(reply);
        sb_printf(reply, "450 4.3.0 <%s>: Recipient address rejected: lookup table changed; try again",
                  sb_str(&rcpt->addr));
        return -1;
    }
    return check_rcpt_once(chk, cl, sender, rcpt, reply);
}

/* smtpd_canonical_address - trailing dot off the domain; "@myorigin" for a bare local part */
void smtpd_canonical_address(struct address *a, const char *myorigin)
{
    if (a->flags & ADDRESS_NULL)
        return;
    if ((a->flags & ADDRESS_NO_DOMAIN) && myorigin != NULL && *myorigin != 0) {
        /* Postfix's append_at_myorigin: "postmaster" is postmaster@$myorigin. */
        sb_putc(&a->addr, '@');
        sb_puts(&a->addr, myorigin);
        sb_set(&a->domain, myorigin);
        a->flags &= ~ADDRESS_NO_DOMAIN;
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
