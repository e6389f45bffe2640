/*
 * qmgr_route - where each recipient of an active message goes.
 *
 * Interface (qmgr.h): qmgr_route_expand(), qmgr_route_message().
 *
 * Aliases are expanded once, when a message is first activated, and the
 * result is made permanent by writing a new queue file (same message, same
 * envelope, the final recipients, orcpt = the original recipient) into
 * incoming/ and removing the old one. From then on every recipient in the
 * queue file is final and has its own status record, so a retry never
 * repeats a delivery that succeeded to another member of the same alias.
 * (Postfix gets the same effect by expanding in cleanup before queueing.)
 *
 * "First activated" is a file whose recipients are all still pending. Such
 * a file is expanded; if the expansion gives exactly its recipients again
 * (expansion is idempotent: an expanded list expands to itself), it is
 * final already and is routed as it is. A table failure leaves the file
 * pending (deferred without status records), so it is expanded again at
 * the next attempt.
 *
 * Routing of a final recipient, by the class of its domain (directory.h),
 * to a transport (a delivery agent's service) and a nexthop, as Postfix's
 * trivial-rewrite does:
 *   mailbox  the mailbox must exist (else bounced 5.1.1), then
 *            virtual_transport ("virtual", or e.g. "lmtp:unix:private/dovecot-lmtp"
 *            to hand mailboxes to an external LMTP server)
 *   alias    an address without alias there is unknown: bounced 5.1.1
 *   relay    relay_transport (default smtp), nexthop from it, else relayhost,
 *            else the recipient domain (its MX)
 *   other    default_transport likewise (only trusted clients get such mail in)
 *   local    deferred 4.4.0: there is no local delivery agent
 * Before that, transport_maps is looked up (the full address, then the
 * domain, then each parent domain as ".parent", as Postfix does). Three of
 * its results are settled in qmgr itself: "error:TEXT" bounces with TEXT
 * (5.0.0 unless TEXT starts with a status code), "retry:TEXT" defers with
 * TEXT likewise (4.0.0), "discard:" delivers to nowhere. Others are
 * "transport:nexthop" ("smtp:[host]:port", "smtp:host", "lmtp:unix:PATH",
 * "lmtp:inet:HOST:PORT", "virtual:"); an empty transport keeps the class's,
 * an empty nexthop means the recipient domain (for smtp) or relayhost.
 * A transport without a delivery agent in master.cf defers (4.3.0).
 * Table failures defer (4.3.0). Permanent alias failures (loops, limits)
 * bounce with 5.4.6 (RFC 3463: routing loop detected).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "delivery_proto.h"
#include "directory.h"
#include "service.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "queue_file.h"
#include "strbuf.h"
#include "strlist.h"

#include "qmgr.h"


/* The expansion of a message: final addresses and the recipient each came from. */
struct expanded {
    struct strlist addrs;
    size_t *origin;                     /* index of the original recipient */
    size_t  cap;
};

/* expanded_add - add address from recipient i unless present (case-insensitively) */
static void expanded_add(struct expanded *x, const char *address, size_t i)
{
    if (strlist_contains_nocase(&x->addrs, address))
        return;
    if (x->addrs.count == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 16;
        x->origin = xreallocarray(x->origin, x->cap, sizeof(*x->origin));
    }
    x->origin[x->addrs.count] = i;
    strlist_add(&x->addrs, address);
}

/* defer_pending - a table failed: defer every pending recipient, keep the file pending */
static void defer_pending(struct qmgr_message *msg, const char *dsn, const char *text)
{
    msg->keep_pending = true;
    for (size_t i = 0; i < msg->qf.env.nrcpt; i++)
        if (msg->qf.env.rcpts[i].state == QUEUE_RCPT_PENDING)
            qmgr_rcpt_result(msg, i, QUEUE_RCPT_DEFERRED, dsn, text, "none", true);
}

/* same_recipients - the expansion is the file's own recipient list */
static bool same_recipients(const struct queue_envelope *env, const struct expanded *x)
{
    if (x->addrs.count != env->nrcpt)
        return false;
    for (size_t i = 0; i < env->nrcpt; i++)
        if (!strlist_contains_nocase(&x->addrs, env->rcpts[i].address))
            return false;
    return true;
}

/* rewrite - a new queue file with the expanded recipients; 0 with new_id */
static int rewrite(struct qmgr_message *msg, const struct expanded *x, char new_id[QUEUE_ID_LEN + 1],
                   struct strbuf *err)
{
    const struct queue_envelope *old = &msg->qf.env;
    struct queue_envelope env = *old;   /* shallow: the strings stay the old file's */
    struct queue_writer *w;
    struct strbuf *orcpts = xcalloc(x->addrs.count, sizeof(*orcpts));
    int     ret = -1;

    env.rcpts = xcalloc(x->addrs.count, sizeof(*env.rcpts));
    env.nrcpt = x->addrs.count;
    memset(env.queue_id, 0, sizeof(env.queue_id));
    for (size_t k = 0; k < x->addrs.count; k++) {
        const struct queue_rcpt *orig = &old->rcpts[x->origin[k]];
        struct queue_rcpt *rc = &env.rcpts[k];

        rc->address = x->addrs.items[k];
        rc->notify = orig->notify;
        rc->state = QUEUE_RCPT_PENDING;
        /* The DSN original recipient: the client's ORCPT, else the address it sent. */
        if (orig->orcpt) {
            rc->orcpt = orig->orcpt;
        } else if (strcasecmp(orig->address, rc->address) != 0) {
            sb_printf(&orcpts[k], "rfc822;%s", orig->address);
            rc->orcpt = orcpts[k].data;
        }
    }
    w = queue_writer_create(qmgr.queue_dirfd, &env, err);
    if (w != NULL) {
        if (qmgr_message_copy(msg, msg->qf.message_offset, msg->qf.message_length, w, err) != 0) {
            queue_writer_abort(w);
        } else if (queue_writer_commit(w, err) == 0) {
            snprintf(new_id, QUEUE_ID_LEN + 1, "%s", env.queue_id);
            ret = 0;
        }
    }
    for (size_t k = 0; k < x->addrs.count; k++)
        sb_free(&orcpts[k]);
    free(orcpts);
    free(env.rcpts);
    return ret;
}

/*
 * tables_stale - before routing a message: are our tables the ones on disk?
 * (Every verdict, a bounce above all, must use the current tables: a user
 * added a moment ago must not be bounced, nor a new domain deferred.)
 * One replaced beyond reach (we are chrooted) means the verdict belongs to a
 * fresh process: the message is deferred for an immediate retry and this
 * qmgr retires (its successor waits for our lock, then finds the message due).
 * Tables that could be reopened in place were, and are used as they are now.
 */
static bool tables_stale(struct qmgr_message *msg)
{
    if (!directory_refresh(qmgr.dir))
        return false;
    msg->retry_now = true;
    service_retire(qmgr.svc, "a lookup table changed; a fresh qmgr will route with it");
    return true;
}

/* qmgr_route_expand - expand aliases of a first-time message; see the file comment */
enum qmgr_expand_result qmgr_route_expand(struct qmgr_message *msg, char new_id[QUEUE_ID_LEN + 1])
{
    struct queue_envelope *env = &msg->qf.env;
    struct expanded x = {STRLIST_INIT, NULL, 0};
    struct strbuf err = STRBUF_INIT, text = STRBUF_INIT;
    char  **permfail = NULL;
    enum qmgr_expand_result result = QMGR_EXPAND_CONTINUE;
    char    active[64];

    if (tables_stale(msg)) {
        defer_pending(msg, "4.3.0", "lookup table changed; retrying with the new table");
        return QMGR_EXPAND_DEFERRED;
    }
    for (size_t i = 0; i < env->nrcpt; i++)
        if (env->rcpts[i].state != QUEUE_RCPT_PENDING)
            return QMGR_EXPAND_CONTINUE;        /* routed before: recipients are final */
    permfail = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(*permfail));
    for (size_t i = 0; i < env->nrcpt; i++) {
        struct strlist out = STRLIST_INIT;
        enum directory_status st = directory_expand(qmgr.dir, env->rcpts[i].address, &out, &err);


        if (st == DIRECTORY_OK && x.addrs.count + out.count > DELIVERY_MAX_RCPT) {
            sb_printf(&err, "more than %d recipients after alias expansion", DELIVERY_MAX_RCPT);
            st = DIRECTORY_PERMFAIL;
        }
        if (st == DIRECTORY_TEMPFAIL) {
            sb_printf(&text, "alias lookup failed: %s", sb_str(&err));
            defer_pending(msg, "4.3.0", sb_str(&text));
            strlist_free(&out);
            result = QMGR_EXPAND_DEFERRED;
            goto out;
        }
        if (st == DIRECTORY_PERMFAIL) {
            /* Kept as it is, so the new file carries it and it bounces there. */
            permfail[i] = xstrdup(sb_len(&err) ? sb_str(&err) : "alias expansion failed");
            expanded_add(&x, env->rcpts[i].address, i);
        } else {
            for (size_t k = 0; k < out.count; k++)
                expanded_add(&x, out.items[k], i);
        }
        strlist_free(&out);
    }
    if (same_recipients(env, &x)) {
        for (size_t i = 0; i < env->nrcpt; i++) {
            if (permfail[i] == NULL)
                continue;
            sb_reset(&text);
            sb_printf(&text, "alias expansion failed: %s", permfail[i]);
            qmgr_rcpt_result(msg, i, QUEUE_RCPT_BOUNCED, "5.4.6", sb_str(&text), "none", true);
        }
        goto out;
    }
    if (rewrite(msg, &x, new_id, &err) != 0) {
        msg_warn("%s: cannot write the queue file with expanded aliases: %s", msg->entry->id,
                 sb_str(&err));
        defer_pending(msg, "4.3.0", "cannot write queue file after alias expansion");
        result = QMGR_EXPAND_FAILED;
        goto out;
    }
    msg_info("%s: aliases expanded: nrcpt=%zu -> %zu, continued as %s", msg->entry->id,
             env->nrcpt, x.addrs.count, new_id);
    snprintf(active, sizeof(active), "active/%s", msg->entry->id);
    /* The new file is committed (fsynced) first: a crash in between repeats, never loses. */
    if (unlink(active) != 0 && errno != ENOENT)
        msg_warn("%s: remove %s: %m", msg->entry->id, active);
    else
        msg_info("%s: removed", msg->entry->id);
    result = QMGR_EXPAND_REPLACED;
out:
    for (size_t i = 0; i < env->nrcpt; i++)
        free(permfail[i]);
    free(permfail);
    strlist_free(&x.addrs);
    free(x.origin);
    sb_free(&err);
    sb_free(&text);
    return result;
}

/* transport_lookup - transport_maps for an address: MAP_FOUND with the entry in buf */
static enum map_status transport_lookup(const char *address, struct strbuf *buf)
{
    struct strbuf key = STRBUF_INIT;
    const char *at = strrchr(address, '@');
    enum map_status st;

    if (qmgr.transport_maps == NULL || maplist_empty(qmgr.transport_maps))
        return MAP_NOTFOUND;
    sb_set(&key, address);
    sb_lowercase(&key);
    st = maplist_lookup(qmgr.transport_maps, sb_str(&key), buf);
    if (st == MAP_NOTFOUND && at != NULL && at[1] != '\0') {
        const char *dom = sb_str(&key) + (at - address) + 1;

        st = maplist_lookup(qmgr.transport_maps, dom, buf);
        for (const char *dot = strchr(dom, '.'); st == MAP_NOTFOUND && dot != NULL; dot = strchr(dot + 1, '.'))
            st = maplist_lookup(qmgr.transport_maps, dot, buf);
    }
    sb_free(&key);
    return st;
}

/*
 * settle_with_text - error:TEXT (class 5) and retry:TEXT (class 4): the
 * status code from TEXT when it starts with one of that class, else X.0.0.
 */
static void settle_with_text(struct qmgr_message *msg, size_t i, const char *text, char cls,
                             enum queue_rcpt_state state, const char *fallback)
{
    char    dsn[16];
    size_t  n = strspn(text, "0123456789.");

    snprintf(dsn, sizeof(dsn), "%c.0.0", cls);
    if (n >= 5 && n < sizeof(dsn) && text[0] == cls && text[1] == '.' && (text[n] == ' ' || text[n] == '\0')) {
        memcpy(dsn, text, n);
        dsn[n] = '\0';
        text += n;
        text += strspn(text, " ");
    }
    qmgr_rcpt_result(msg, i, state, dsn, *text ? text : fallback, "none", true);
}

/* transport_final - error:, retry: and discard: entries; true when the result is recorded */
static bool transport_final(struct qmgr_message *msg, size_t i, const char *entry)
{
    if (strncasecmp(entry, "discard:", 8) == 0) {
        qmgr_rcpt_result(msg, i, QUEUE_RCPT_DELIVERED, "2.0.0", "discarded", "none", true);
        return true;
    }
    if (strncasecmp(entry, "error:", 6) == 0) {
        settle_with_text(msg, i, entry + 6, '5', QUEUE_RCPT_BOUNCED, "mail delivery disabled by transport_maps");
        return true;
    }
    /* Postfix's retry(8): defer now, try again later (until the message expires). */
    if (strncasecmp(entry, "retry:", 6) == 0) {
        settle_with_text(msg, i, entry + 6, '4', QUEUE_RCPT_DEFERRED, "delivery temporarily suspended by transport_maps");
        return true;
    }
    return false;
}

/* split_spec - "transport:nexthop" into its parts (nexthop may be empty) */
static void split_spec(const char *spec, struct strbuf *name, struct strbuf *hop)
{
    size_t  len = strcspn(spec, ":");

    sb_reset(name);
    sb_append(name, spec, len);
    sb_set(hop, spec[len] == ':' ? spec + len + 1 : "");
}

/* default_nexthop - relayhost, else the recipient domain (lower case) */
static void default_nexthop(const char *domain, bool use_relayhost, struct strbuf *hop)
{
    const char *relayhost = config_str(qmgr.svc->cfg, "relayhost");

    if (use_relayhost && *relayhost) {
        sb_set(hop, relayhost);
        return;
    }
    sb_set(hop, domain);
    sb_lowercase(hop);
}

/* find_transport - the agent for a transport name; NULL with the recipient deferred */
static struct qmgr_transport *find_transport(struct qmgr_message *msg, size_t i, const char *name)
{
    struct qmgr_transport *tr = qmgr_transport_find(name);
    char    text[128];

    if (tr == NULL) {
        snprintf(text, sizeof(text), "mail transport unavailable: no delivery agent \"%.60s\" in master.cf",
                 name);
        qmgr_rcpt_result(msg, i, QUEUE_RCPT_DEFERRED, "4.3.0", text, "none", true);
    }
    return tr;
}

/* mailbox_exists - the virtual mailbox check; false with the recipient's result recorded */
static bool mailbox_exists(struct qmgr_message *msg, size_t i, struct strbuf *buf)
{
    switch (directory_mailbox(qmgr.dir, msg->qf.env.rcpts[i].address, buf)) {
    case MAP_FOUND:
        return true;
    case MAP_NOTFOUND:
        qmgr_rcpt_result(msg, i, QUEUE_RCPT_BOUNCED, "5.1.1",
                         "unknown user: user unknown in virtual mailbox table", "none", true);
        return false;
    case MAP_TEMPFAIL:
    default:
        qmgr_rcpt_result(msg, i, QUEUE_RCPT_DEFERRED, "4.3.0", "virtual_mailbox_maps lookup failed",
                         "none", true);
        return false;
    }
}

/* route_spec - a "transport:nexthop" for recipient i: the agent, hop filled in; NULL with a result */
static struct qmgr_transport *route_spec(struct qmgr_message *msg, size_t i, const char *spec,
                                         const char *class_spec, bool use_relayhost, struct strbuf *hop)
{
    const char *address = msg->qf.env.rcpts[i].address;
    const char *at = strrchr(address, '@');
    struct strbuf name = STRBUF_INIT, cname = STRBUF_INIT, chop = STRBUF_INIT;
    struct qmgr_transport *tr;

    split_spec(spec, &name, hop);
    split_spec(class_spec, &cname, &chop);
    if (sb_len(&name) == 0)
        sb_set(&name, sb_str(&cname));
    if (sb_len(hop) == 0 && strcmp(sb_str(&name), sb_str(&cname)) == 0)
        sb_set(hop, sb_str(&chop));     /* the class's own nexthop goes with its transport */
    tr = find_transport(msg, i, sb_str(&name));
    if (tr != NULL && qmgr_transport_wants_nexthop(tr) && sb_len(hop) == 0)
        default_nexthop(at ? at + 1 : "", use_relayhost, hop);
    if (tr != NULL && !qmgr_transport_wants_nexthop(tr))
        sb_reset(hop);
    sb_free(&name);
    sb_free(&cname);
    sb_free(&chop);
    return tr;
}

/* route_one - the transport and nexthop (hop) for a final recipient, or NULL with its result recorded */
static struct qmgr_transport *route_one(struct qmgr_message *msg, size_t i, struct strbuf *buf,
                                        struct strbuf *hop)
{
    const char *address = msg->qf.env.rcpts[i].address;
    const char *at = strrchr(address, '@');
    struct config *cfg = qmgr.svc->cfg;
    enum domain_class cls;
    struct strbuf entry = STRBUF_INIT;
    bool    have_entry = false;
    struct qmgr_transport *tr = NULL;

    switch (transport_lookup(address, buf)) {
    case MAP_FOUND:
        if (transport_final(msg, i, sb_str(buf)))
            return NULL;
        sb_set(&entry, sb_str(buf));
        have_entry = true;
        break;
    case MAP_NOTFOUND:
        break;
    case MAP_TEMPFAIL:
    default:
        qmgr_rcpt_result(msg, i, QUEUE_RCPT_DEFERRED, "4.3.0", "transport_maps lookup failed", "none", true);
        return NULL;
    }
    if (directory_classify(qmgr.dir, at ? at + 1 : "", &cls) != DIRECTORY_OK) {
        qmgr_rcpt_result(msg, i, QUEUE_RCPT_DEFERRED, "4.3.0", "domain table lookup failed", "none", true);
        sb_free(&entry);
        return NULL;
    }
    switch (cls) {
    case DOMAIN_MAILBOX:
        if (!have_entry && !mailbox_exists(msg, i, buf))
            break;
        tr = route_spec(msg, i, have_entry ? sb_str(&entry) : "", config_str(cfg, "virtual_transport"),
                        false, hop);
        /* The virtual agent itself would not know the user: check here, as without an entry. */
        if (tr != NULL && have_entry && !qmgr_transport_wants_nexthop(tr) && !mailbox_exists(msg, i, buf))
            tr = NULL;
        break;
    case DOMAIN_ALIAS:
        if (have_entry) {
            tr = route_spec(msg, i, sb_str(&entry), config_str(cfg, "default_transport"), true, hop);
            break;
        }
        qmgr_rcpt_result(msg, i, QUEUE_RCPT_BOUNCED, "5.1.1",
                         "unknown user: user unknown in virtual alias table", "none", true);
        break;
    case DOMAIN_RELAY:
        tr = route_spec(msg, i, have_entry ? sb_str(&entry) : "", config_str(cfg, "relay_transport"), true, hop);
        break;
    case DOMAIN_OTHER:
        tr = route_spec(msg, i, have_entry ? sb_str(&entry) : "", config_str(cfg, "default_transport"),
                        true, hop);
        break;
    case DOMAIN_LOCAL:
    default:
        if (have_entry) {
            tr = route_spec(msg, i, sb_str(&entry), config_str(cfg, "default_transport"), true, hop);
            break;
        }
        qmgr_rcpt_result(msg, i, QUEUE_RCPT_DEFERRED, "4.4.0", "local delivery is not available",
                         "none", true);
        break;
    }
    sb_free(&entry);
    return tr;
}

/* Recipients of a message that go to the same transport and nexthop travel together. */
struct route_slot {
    struct qmgr_transport *tr;          /* NULL: settled in qmgr, or taken into a job */
    char   *hop;                        /* NULL: none */
};

/* qmgr_route_message - results or delivery jobs for every recipient not yet final */
void qmgr_route_message(struct qmgr_message *msg)
{
    struct strbuf buf = STRBUF_INIT, hop = STRBUF_INIT;
    size_t  nrcpt = msg->qf.env.nrcpt;
    struct route_slot *slot = xcalloc(nrcpt ? nrcpt : 1, sizeof(*slot));
    size_t *idx = xcalloc(nrcpt ? nrcpt : 1, sizeof(*idx));

    for (size_t i = 0; i < nrcpt; i++) {
        enum queue_rcpt_state st = msg->qf.env.rcpts[i].state;

        if (st == QUEUE_RCPT_DELIVERED || st == QUEUE_RCPT_BOUNCED)
            continue;
        sb_reset(&hop);
        slot[i].tr = route_one(msg, i, &buf, &hop);
        if (slot[i].tr != NULL && sb_len(&hop) > 0)
            slot[i].hop = xstrdup(sb_str(&hop));
    }
    for (size_t i = 0; i < nrcpt; i++) {
        struct qmgr_transport *tr = slot[i].tr;
        char   *h = slot[i].hop;
        size_t  n = 0;

        if (tr == NULL)
            continue;
        for (size_t j = i; j < nrcpt; j++) {
            if (slot[j].tr != tr || (h == NULL) != (slot[j].hop == NULL)
                || (h != NULL && strcasecmp(h, slot[j].hop) != 0))
                continue;
            idx[n++] = j;
            slot[j].tr = NULL;
            if (n == QMGR_JOB_RCPT_MAX) {
                qmgr_deliver_add(tr, msg, h, idx, n);
                n = 0;
            }
        }
        if (n > 0)
            qmgr_deliver_add(tr, msg, h, idx, n);
    }
    for (size_t i = 0; i < nrcpt; i++)
        free(slot[i].hop);
    free(slot);
    free(idx);
    sb_free(&buf);
    sb_free(&hop);
}
