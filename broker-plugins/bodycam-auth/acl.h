/*
 * acl.h - the roles and their topic rules, as a pure function.
 *
 * No broker call and no state: given who (role + name), what (read, write,
 * subscribe, unsubscribe), the topic or filter and the retain flag, it says
 * allowed or why not. identity.c turns a broker client into a principal;
 * plugin.c counts the reasons. The decision order is stated in acl.c.
 */
#ifndef BC_AUTH_ACL_H
#define BC_AUTH_ACL_H

#include <stdbool.h>

typedef enum bc_role {
    BC_ROLE_NONE = 0,  /* unknown, refused, or no longer in the registry */
    BC_ROLE_CAMERA,    /* name = device id, from its certificate CN */
    BC_ROLE_SERVICE,   /* name = service name, from its certificate CN */
    BC_ROLE_DASHBOARD, /* name = dashboard user, from username + password */
} bc_role;

/* Who is asking. name is borrowed from the caller and is always an id of the
 * role's alphabet (never a topic wildcard, '/', NUL or non-ASCII byte). */
typedef struct bc_principal {
    bc_role role;
    const char *name;
} bc_principal;

typedef enum bc_acl_access {
    BC_ACL_READ,        /* a message is about to be delivered to the client */
    BC_ACL_WRITE,       /* the client publishes (also: its will, a retained source re-check) */
    BC_ACL_SUBSCRIBE,   /* the client subscribes to a filter */
    BC_ACL_UNSUBSCRIBE, /* the client unsubscribes */
} bc_acl_access;

typedef enum bc_acl_result {
    BC_ACL_ALLOW = 0,
    BC_ACL_DENY_NO_ROLE,      /* no principal: unknown, revoked, never authenticated */
    BC_ACL_DENY_BAD_TOPIC,    /* empty, too long, or not a well-formed bodycam topic */
    BC_ACL_DENY_SYSTEM,       /* '$SYS', '$CONTROL' or any other '$' topic */
    BC_ACL_DENY_BAD_SHARE,    /* a malformed '$share/<group>/<filter>' */
    BC_ACL_DENY_OUTSIDE_ROLE, /* well-formed, but not this role's topic */
    BC_ACL_DENY_RETAIN,       /* this role may not retain on this topic */
    BC_ACL_RESULT_COUNT
} bc_acl_result;

/* Decides one access. topic is a concrete topic for READ/WRITE and a filter
 * (possibly "$share/<group>/<filter>") for SUBSCRIBE/UNSUBSCRIBE; NULL is
 * denied. Never allocates; safe to call on every message. */
bc_acl_result bc_acl_check(const bc_principal *who, bc_acl_access access, const char *topic,
                           bool retain);

/* 1 when every topic matched by filter is also matched by allowed (both MQTT
 * filters), else 0. "a/+/c" is within "a/#" and "a/+/c"; "a/#" is not
 * within "a/+/c". Malformed filters are never within anything. */
int bc_acl_filter_within(const char *filter, const char *allowed);

/* Strips "$share/<group>/" from a subscription filter. Returns the real
 * filter (a pointer into filter), filter itself when it is not shared, or
 * NULL when it is a malformed share (empty or wildcard group, no filter). */
const char *bc_acl_real_filter(const char *filter);

/* Short static names for counters and log lines ("outside_role", ...). */
const char *bc_acl_result_name(bc_acl_result result);
const char *bc_role_name(bc_role role);

#endif
