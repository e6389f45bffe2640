/*
 * config_params - every parameter Postern knows, and the parsers for typed values.
 *
 * Interface (config_params.h, config.h):
 *   config_params[], config_params_count   name, type, default, minimum
 *   config_type_name(), config_type_hint()  words for error messages
 *   config_name_valid()                     parameter name syntax
 *   config_parse_time/size/bool()           "5m", "10M", "yes" and friends
 *
 * Defaults are main.cf text and are expanded like it, so "$myhostname" in a
 * default follows what main.cf sets. myhostname and mydomain are computed from
 * the host name when main.cf does not set them (see config.c).
 *
 * A WORDS() parameter is a list that may hold only the words of its table
 * (Postfix's name masks, such as notify_classes); config.c checks it at load.
 *
 * To add a parameter, add a line to the table; the order does not matter
 * (config.c sorts), but keep it grouped by subsystem for readers.
 */
#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

#include "config.h"
#include "config_params.h"

#define STR(n, d)       { n, CONFIG_STR, d, 0, CONFIG_DEF_TEXT, NULL }
#define INT(n, d, m)    { n, CONFIG_INT, d, m, CONFIG_DEF_TEXT, NULL }
#define BOOL(n, d)      { n, CONFIG_BOOL, d, 0, CONFIG_DEF_TEXT, NULL }
#define TIME(n, d, m)   { n, CONFIG_TIME, d, m, CONFIG_DEF_TEXT, NULL }
#define SIZE(n, d, m)   { n, CONFIG_SIZE, d, m, CONFIG_DEF_TEXT, NULL }
#define WORDS(n, d, w)  { n, CONFIG_STR, d, 0, CONFIG_DEF_TEXT, w }

/* Postfix's notify_classes: what the postmaster is told about (see qmgr_bounce.c). */
static const char *const notify_class_words[] = {
    "bounce", "2bounce", "delay", "policy", "protocol", "resource", "software", "data", NULL
};

const struct config_param config_params[] = {
    /* Where things live and who owns them. */
    STR("config_directory", "/etc/postern"),
    STR("queue_directory", "/var/spool/postern"),
    STR("data_directory", "/var/lib/postern"),
    STR("daemon_directory", "/usr/lib/postern"),
    STR("virtual_mailbox_base", "/var/mail/vhosts"),
    STR("auth_directory", "/var/lib/postern-auth"),
    STR("auth_passwd_file", "$auth_directory/passwd"),  /* Dovecot passwd-file: user:{SCHEME}hash:... */
    STR("auth_passdb_maps", ""),        /* user -> passwd-file fields; empty: auth_passwd_file */
    INT("virtual_alias_expansion_limit", "1000", 1),
    INT("virtual_alias_recursion_limit", "100", 1),
    STR("virtual_destination_concurrency_limit", ""),   /* empty: twice the virtual processes */
    STR("mail_owner", "postern"),
    STR("auth_owner", "postern-auth"),
    STR("vmail_owner", "vmail"),

    /* Logging. */
    STR("syslog_name", "postern"),
    STR("syslog_facility", "mail"),
    STR("maillog_file", ""),

    /* Identity and networks. */
    { "myhostname", CONFIG_STR, "", 0, CONFIG_DEF_HOSTNAME, NULL },
    { "mydomain", CONFIG_STR, "", 0, CONFIG_DEF_DOMAIN, NULL },
    STR("myorigin", "$myhostname"),
    BOOL("append_at_myorigin", "yes"),                  /* local mail: "user" becomes user@$myorigin */
    STR("mydestination", "$myhostname, localhost.$mydomain, localhost"),
    STR("mynetworks", "127.0.0.0/8 [::1]/128"),
    STR("inet_interfaces", "all"),
    STR("inet_protocols", "all"),
    STR("mail_name", "Postern"),

    /* master. */
    INT("default_process_limit", "1", 1),
    TIME("service_throttle_time", "60s", 1),
    TIME("graceful_stop_timeout", "10s", 0),

    /* smtpd. */
    STR("smtpd_banner", "$myhostname ESMTP $mail_name"),
    SIZE("message_size_limit", "10240000", 0),
    /* Free queue space needed to take mail (0: $message_size_limit), Postfix's rule:
     * MAIL is refused with 452 4.3.1 when free / 1.5 < queue_minfree + SIZE. */
    SIZE("queue_minfree", "0", 0),
    INT("line_length_limit", "2048", 1),
    TIME("smtpd_timeout", "300s", 1),
    INT("smtpd_recipient_limit", "1000", 1),
    INT("smtpd_hard_error_limit", "20", 1),
    BOOL("smtpd_helo_required", "no"),
    BOOL("disable_vrfy_command", "yes"),
    BOOL("smtpd_delay_reject", "yes"),
    STR("smtpd_client_restrictions", ""),
    STR("smtpd_helo_restrictions", ""),
    STR("smtpd_sender_restrictions", ""),
    STR("smtpd_relay_restrictions",
        "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"),
    STR("smtpd_recipient_restrictions", ""),
    STR("smtpd_data_restrictions", ""),
    BOOL("smtpd_sasl_auth_enable", "no"),
    STR("smtpd_sasl_type", "dovecot"),
    STR("smtpd_sasl_path", "private/auth"),
    STR("smtpd_tls_cert_file", ""),
    STR("smtpd_tls_key_file", ""),
    STR("smtpd_tls_security_level", ""),
    BOOL("smtpd_tls_auth_only", "no"),
    BOOL("smtpd_tls_wrappermode", "no"),
    /* smtpd TLS and SASL details (smtpd_tls.c, smtpd_sasl.c). */
    STR("smtpd_tls_protocols", ">=TLSv1.2"),            /* Postfix 3.6 syntax; also "!TLSv1, !TLSv1.1" */
    STR("smtpd_tls_ciphers", ""),                       /* TLS 1.2 cipher list; empty: OpenSSL's */
    STR("smtpd_tls_eccert_file", ""),                   /* second chain (ECDSA) beside the RSA one */
    STR("smtpd_tls_eckey_file", "$smtpd_tls_eccert_file"),
    TIME("smtpd_tls_session_cache_timeout", "3600s", 0),
    BOOL("smtpd_tls_received_header", "yes"),           /* "(using TLSv1.3 with cipher ...)" */
    BOOL("smtpd_sasl_authenticated_header", "no"),      /* login name in Received: */
    BOOL("broken_sasl_auth_clients", "no"),             /* also "AUTH=PLAIN LOGIN" for old Outlook */
    STR("smtpd_sender_login_maps", ""),                 /* sender address -> login(s) owning it */
    /* smtpd restrictions (smtpd_check.c, smtpd_policy.c, smtpd_anvil.c) and ESMTP options. */
    STR("smtpd_end_of_data_restrictions", ""),
    STR("header_checks", ""),                           /* header_checks(5): primary message headers */
    STR("mime_header_checks", "$header_checks"),        /* MIME headers of the message and every part */
    STR("nested_header_checks", "$header_checks"),      /* headers of attached message/rfc822 parts */
    BOOL("smtpd_reject_unlisted_recipient", "yes"),     /* own domains: unknown users get 550 */
    INT("smtpd_soft_error_limit", "10", 1),             /* from here on every reply waits... */
    TIME("smtpd_error_sleep_time", "1s", 0),            /* ...this long (a timer, never sleep()) */
    INT("smtpd_client_connection_count_limit", "50", 0),    /* per client, per smtpd process */
    INT("smtpd_client_connection_rate_limit", "0", 0),      /* per anvil_rate_time_unit; 0: none */
    TIME("anvil_rate_time_unit", "60s", 1),
    STR("smtpd_client_event_limit_exceptions", "$mynetworks"),
    TIME("smtpd_policy_service_timeout", "100s", 1),
    TIME("smtpd_policy_service_max_idle", "300s", 1),
    STR("smtpd_policy_service_default_action", "451 4.3.5 Server configuration problem"),
    STR("smtpd_policy_service_policy_context", ""),
    INT("unknown_address_reject_code", "450", 400),     /* reject_unknown_sender/recipient_domain */
    INT("unknown_hostname_reject_code", "450", 400),    /* reject_unknown_helo_hostname */
    INT("non_fqdn_reject_code", "504", 400),
    INT("invalid_hostname_reject_code", "501", 400),
    INT("reject_code", "554", 400),
    INT("defer_code", "450", 400),
    STR("dns_resolver_address", ""),                    /* Postern: name servers for smtpd's DNS
                                                         * checks ("127.0.0.1:5353"); empty:
                                                         * /etc/resolv.conf */
    BOOL("smtputf8_enable", "yes"),

    /* imapd (imapd/imapd.c). TLS defaults to smtpd's certificate and level;
     * imapd_sasl_path is relative to virtual_mailbox_base (imapd's chroot);
     * imapd_timeout applies before login (30 minutes after it, RFC 3501 5.4);
     * plaintext logins before TLS only from the server's own address, as Dovecot. */
    STR("imapd_tls_cert_file", "$smtpd_tls_cert_file"),
    STR("imapd_tls_key_file", "$smtpd_tls_key_file"),
    STR("imapd_tls_security_level", "$smtpd_tls_security_level"),
    BOOL("imapd_tls_wrappermode", "no"),
    STR("imapd_tls_protocols", "$smtpd_tls_protocols"),
    STR("imapd_tls_ciphers", "$smtpd_tls_ciphers"),
    STR("imapd_sasl_path", ".postern/auth"),
    TIME("imapd_timeout", "180s", 1),
    INT("imapd_max_line_length", "65536", 8192),
    BOOL("imapd_disable_plaintext_auth", "yes"),
    SIZE("imapd_header_cache_size", "32m", 0),          /* per process: envelope fields */

    /* Address classes and routing. */
    STR("virtual_mailbox_domains", ""),
    STR("virtual_mailbox_maps", ""),
    STR("virtual_alias_maps", ""),
    STR("virtual_alias_domains", "$virtual_alias_maps"),
    STR("relay_domains", ""),
    STR("transport_maps", ""),
    STR("default_transport", "smtp"),
    STR("relay_transport", "smtp"),
    STR("virtual_transport", "virtual"),
    STR("virtual_mailbox_limit_maps", ""),              /* address or @domain -> quota bytes (postctl user --quota) */
    BOOL("virtual_overquota_bounce", "no"),             /* over quota: bounce 5.2.2 instead of defer 4.2.2 */
    STR("relayhost", ""),                               /* [host]:port or domain; empty: direct */
    INT("default_destination_concurrency_limit", "20", 1),  /* per nexthop; TRANSPORT_destination_... */
    STR("smtp_destination_concurrency_limit", ""),      /* empty: the default above */
    STR("lmtp_destination_concurrency_limit", ""),

    /* smtp/lmtp client (delivery/smtp*.c). */
    STR("smtp_dns_servers", "$dns_resolver_address"),  /* Postern: empty = /etc/resolv.conf */
    TIME("smtp_connect_timeout", "30s", 1),
    TIME("smtp_helo_timeout", "300s", 1),
    TIME("smtp_starttls_timeout", "300s", 1),
    TIME("smtp_mail_timeout", "300s", 1),
    TIME("smtp_rcpt_timeout", "300s", 1),
    TIME("smtp_data_init_timeout", "120s", 1),
    TIME("smtp_data_xfer_timeout", "180s", 1),
    TIME("smtp_data_done_timeout", "600s", 1),
    TIME("smtp_quit_timeout", "300s", 1),
    TIME("smtp_connection_cache_time_limit", "2s", 0),  /* idle connection kept for reuse; 0: none */
    INT("smtp_connection_reuse_count_limit", "100", 0), /* transactions per connection; 0: no limit */
    STR("smtp_helo_name", "$myhostname"),
    STR("smtp_tls_security_level", "may"),              /* none, may, encrypt, verify (secure) */
    STR("smtp_tls_CAfile", ""),
    STR("smtp_tls_protocols", ">=TLSv1.2"),
    STR("lmtp_tls_security_level", "none"),
    STR("default_database_type", "hash"),

    /* Queue manager. */
    TIME("queue_run_delay", "300s", 1),
    /* How long a delivery agent may take over one request before qmgr gives up on it and
     * defers (Postfix's watchdog parameter): the agent's own stage timeouts end a slow
     * delivery long before, so giving up early would risk a second, duplicate delivery. */
    TIME("daemon_timeout", "18000s", 1),
    TIME("minimal_backoff_time", "300s", 1),
    TIME("maximal_backoff_time", "4000s", 1),
    TIME("maximal_queue_lifetime", "5d", 0),
    TIME("bounce_queue_lifetime", "5d", 0),
    TIME("delay_warning_time", "0h", 0),                /* 0: no delay warnings */
    SIZE("bounce_size_limit", "50000", 1),              /* larger originals: headers only */
    WORDS("notify_classes", "resource, software", notify_class_words),
    STR("bounce_notice_recipient", "postmaster"),       /* notify_classes bounce: header copies of bounces */
    STR("2bounce_notice_recipient", "postmaster"),      /* notify_classes 2bounce: failed null-sender mail */
    STR("delay_notice_recipient", "postmaster"),        /* notify_classes delay: header copies of warnings */
    STR("double_bounce_sender", "double-bounce"),       /* @myhostname: its failures are dropped */

    /* authd: brute-force defence (per client IP, IPv6 per /64, and per user name).
     * A failed login's reply waits auth_failure_delay, doubling with each failure
     * in the window up to auth_failure_delay_max; auth_failure_limit failures
     * within auth_failure_window lock that IP / user out for auth_lockout_time
     * (0 = never lock). A success resets its IP and user. auth_throttle_entries
     * bounds the memory for the counters. */
    TIME("auth_failure_delay", "2s", 0),
    TIME("auth_failure_delay_max", "15s", 0),
    INT("auth_failure_limit", "10", 0),
    TIME("auth_failure_window", "10m", 1),
    TIME("auth_lockout_time", "10m", 0),
    INT("auth_throttle_entries", "100000", 1),
    TIME("auth_request_timeout", "2m", 1),      /* a CONT round trip left unanswered */
    INT("auth_worker_threads", "2", 1),         /* password hashes checked at once */

    /* policyd (greylisting), Postgrey's rules: a new (client network, sender,
     * recipient) triplet is deferred; a retry after greylist_delay and within
     * greylist_retry_window after that passes; triplets and auto-whitelist
     * counts not seen for greylist_max_age are forgotten. A network with
     * greylist_auto_whitelist_clients passed triplets is not greylisted any
     * more (0: never). Whitelists: client address/name maps, networks (CIDR
     * list as mynetworks), recipient maps ("user@domain", "domain", "user@").
     * The store is greylist_database in data_directory. */
    TIME("greylist_delay", "300s", 0),
    TIME("greylist_max_age", "35d", 1),
    TIME("greylist_retry_window", "2d", 1),
    INT("greylist_auto_whitelist_clients", "5", 0),
    INT("greylist_client_netmask_ipv4", "24", 0),       /* 0..32 */
    INT("greylist_client_netmask_ipv6", "64", 0),       /* 0..128 */
    STR("greylist_whitelist_clients", ""),
    STR("greylist_whitelist_networks", ""),
    STR("greylist_whitelist_recipients", "inline:{ postmaster@=OK, abuse@=OK }"),
    BOOL("greylist_prepend_header", "yes"),             /* X-Greylist: on mail that waited */
    STR("greylist_database", "greylist.db"),
};

const size_t config_params_count = sizeof(config_params) / sizeof(config_params[0]);

/* config_type_name - "string", "integer", ... for messages */
const char *config_type_name(enum config_type type)
{
    switch (type) {
    case CONFIG_STR:
        return "string";
    case CONFIG_INT:
        return "integer";
    case CONFIG_BOOL:
        return "boolean";
    case CONFIG_TIME:
        return "time";
    case CONFIG_SIZE:
        return "size";
    }
    return "unknown";
}

/* config_type_hint - what a valid value looks like, for error suggestions */
const char *config_type_hint(enum config_type type)
{
    switch (type) {
    case CONFIG_STR:
        return "any text";
    case CONFIG_INT:
        return "a whole number such as 100";
    case CONFIG_BOOL:
        return "yes or no";
    case CONFIG_TIME:
        return "a time such as 300s, 5m, 1h, 2d or 1w (no unit means seconds)";
    case CONFIG_SIZE:
        return "a size in bytes such as 10240000, 512k, 50M or 1G";
    }
    return "?";
}

/* config_name_valid - letters, digits and '_' only, 1..CONFIG_NAME_MAX bytes */
bool config_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > CONFIG_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char) name[i]) && name[i] != '_')
            return false;
    return true;
}

/* parse_number - leading decimal digits of text; -1 on none or overflow */
static int parse_number(const char **text, long long *value)
{
    const char *p = *text;
    long long v = 0;

    if (!isdigit((unsigned char) *p))
        return -1;                      /* also rejects "-5", "+5", " 5" */
    for (; isdigit((unsigned char) *p); p++) {
        int     d = *p - '0';

        if (v > (LLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *text = p;
    *value = v;
    return 0;
}

/* scale - value * mult without overflow */
static int scale(long long value, long long mult, long long *out)
{
    if (value > LLONG_MAX / mult)
        return -1;
    *out = value * mult;
    return 0;
}

/* config_parse_time - "300", "300s", "5m", "1h", "2d", "1w" into seconds */
int config_parse_time(const char *text, long long *seconds)
{
    const char *p = text;
    long long v;
    long long mult;

    if (text == NULL || parse_number(&p, &v) < 0)
        return -1;
    switch (*p) {
    case '\0':
    case 's':
        mult = 1;
        break;
    case 'm':
        mult = 60;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    case 'w':
        mult = 7 * 86400;
        break;
    default:
        return -1;
    }
    if (*p != '\0' && p[1] != '\0')
        return -1;
    return scale(v, mult, seconds);
}

/* config_parse_size - "10240000", "10k", "50M", "1G" into bytes (powers of 1024) */
int config_parse_size(const char *text, long long *bytes)
{
    const char *p = text;
    long long v;
    long long mult;

    if (text == NULL || parse_number(&p, &v) < 0)
        return -1;
    switch (tolower((unsigned char) *p)) {
    case '\0':
        mult = 1;
        break;
    case 'k':
        mult = 1024LL;
        break;
    case 'm':
        mult = 1024LL * 1024;
        break;
    case 'g':
        mult = 1024LL * 1024 * 1024;
        break;
    default:
        return -1;
    }
    if (*p != '\0' && p[1] != '\0')
        return -1;
    return scale(v, mult, bytes);
}

/* config_parse_bool - yes/no, true/false, on/off, 1/0, any case */
int config_parse_bool(const char *text, bool *value)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };

    if (text == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *value = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *value = false;
            return 0;
        }
    }
    return -1;
}
