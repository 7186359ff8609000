/*
 * dispatch.c - provider selection, retries and failover for one message.
 *
 * Invariant: a message handed to a plugin that ACCEPTED it is never handed
 * to any plugin again. Retries only follow RETRY verdicts. The loop thread
 * owns every field; worker threads touch only m->verdict inside a deliver.
 */
#include "dispatch.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

#define DISPATCH_RETRIES 2
#define DISPATCH_BACKOFF_MS 1000
#define DISPATCH_BACKOFF_MAX_MS 60000

struct dispatch {
    uv_loop_t *loop;
    const struct config *cfg;
    struct plugin_set *ps;
    size_t in_flight;
    struct dispatch_msg *waiting; /* messages on a retry timer */
};

struct dispatch *dispatch_new(uv_loop_t *loop, const struct config *cfg, struct plugin_set *ps)
{
    struct dispatch *d = xcalloc(1, sizeof(*d));
    d->loop = loop;
    d->cfg = cfg;
    d->ps = ps;
    return d;
}

size_t dispatch_in_flight(const struct dispatch *d) { return d->in_flight; }

static struct plugin_provider *current_provider(struct dispatch_msg *m)
{
    const struct config_channel *cc = &m->d->cfg->channels[m->channel];
    if (!cc->present || m->provider_pos >= cc->nproviders) return NULL;
    return plugin_set_get(m->d->ps, (size_t)cc->provider_index[m->provider_pos]);
}

static void finish(struct dispatch_msg *m)
{
    m->d->in_flight--;
    m->done(m, m->done_arg);
}

static void attempt(struct dispatch_msg *m);

static void work_deliver(uv_work_t *w)
{
    struct dispatch_msg *m = w->data;
    struct plugin_provider *pp = current_provider(m);
    struct herald_message hm = {
        .campaign = m->campaign,
        .recipient = m->recipient,
        .channel = herald_channel_name(m->channel),
        .topic = m->topic,
        .to = m->to,
        .subject = m->subject,
        .text = m->text,
        .html = m->html,
        .unsubscribe_url = m->unsubscribe_url,
        .preferences_url = m->preferences_url,
    };
    memset(&m->verdict, 0, sizeof(m->verdict));
    pp->api->deliver(pp->instance, &hm, &m->verdict);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void unlink_waiting(struct dispatch_msg *m)
{
    for (struct dispatch_msg **pp = &m->d->waiting; *pp; pp = &(*pp)->next_waiting) {
        if (*pp == m) {
            *pp = m->next_waiting;
            break;
        }
    }
    m->next_waiting = NULL;
    uv_close((uv_handle_t *)m->retry_timer, on_timer_closed);
    m->retry_timer = NULL;
}

static void on_retry_timer(uv_timer_t *t)
{
    struct dispatch_msg *m = t->data;
    unlink_waiting(m);
    attempt(m);
}

static void retry_later(struct dispatch_msg *m, int64_t min_ms)
{
    int64_t delay = DISPATCH_BACKOFF_MS << (m->attempt > 6 ? 6 : m->attempt - 1);
    delay = delay / 2 + rand() % (delay / 2 + 1); /* jitter */
    if (delay < min_ms) delay = min_ms;
    if (delay > DISPATCH_BACKOFF_MAX_MS) delay = DISPATCH_BACKOFF_MAX_MS;
    m->retry_timer = xmalloc(sizeof(uv_timer_t));
    uv_timer_init(m->d->loop, m->retry_timer);
    m->retry_timer->data = m;
    m->next_waiting = m->d->waiting;
    m->d->waiting = m;
    uv_timer_start(m->retry_timer, on_retry_timer, (uint64_t)delay, 0);
}

static void after_deliver(uv_work_t *w, int status)
{
    struct dispatch_msg *m = w->data;
    struct plugin_provider *pp = current_provider(m);
    snprintf(m->provider, sizeof(m->provider), "%s", pp->name);
    if (status == UV_ECANCELED) {
        m->outcome = HERALD_OUTCOME_UNKNOWN;
        m->interrupted = true;
        finish(m);
        return;
    }
    struct herald_verdict *v = &m->verdict;
    switch (v->kind) {
    case HERALD_VERDICT_ACCEPTED:
        m->outcome = HERALD_OUTCOME_SENT;
        m->reason = HERALD_REASON_NONE;
        snprintf(m->provider_id, sizeof(m->provider_id), "%s", v->provider_id);
        finish(m);
        return;
    case HERALD_VERDICT_REJECTED:
        m->outcome = HERALD_OUTCOME_FAILED;
        m->reason = HERALD_REASON_PROVIDER_REJECTED;
        snprintf(m->detail, sizeof(m->detail), "%s", v->reason[0] ? v->reason : "rejected");
        log_info("dispatch", "rejected campaign=%s recipient=%s provider=%s reason=%s", m->campaign,
                 m->recipient, m->provider, m->detail);
        finish(m);
        return;
    case HERALD_VERDICT_RETRY:
    default:
        snprintf(m->detail, sizeof(m->detail), "%s", v->reason[0] ? v->reason : "retry");
        log_info("dispatch", "retry campaign=%s recipient=%s provider=%s attempt=%d reason=%s",
                 m->campaign, m->recipient, m->provider, m->attempt, m->detail);
        if (m->attempt <= DISPATCH_RETRIES) {
            retry_later(m, v->retry_after_ms);
            return;
        }
        /* This provider is exhausted: fail over to the next one. */
        m->provider_pos++;
        m->attempt = 0;
        if (current_provider(m)) {
            attempt(m);
            return;
        }
        m->outcome = HERALD_OUTCOME_FAILED;
        m->reason = HERALD_REASON_PROVIDER_ERROR;
        finish(m);
        return;
    }
}

static void attempt(struct dispatch_msg *m)
{
    struct plugin_provider *pp = current_provider(m);
    if (!pp || !pp->api) {
        m->outcome = HERALD_OUTCOME_FAILED;
        m->reason = HERALD_REASON_PROVIDER_ERROR;
        snprintf(m->detail, sizeof(m->detail), "no provider for the channel");
        finish(m);
        return;
    }
    m->attempt++;
    if (!pp->api->deliver) {
        /* Network plugins need the curl engine; refuse rather than pretend. */
        m->outcome = HERALD_OUTCOME_FAILED;
        m->reason = HERALD_REASON_PROVIDER_ERROR;
        snprintf(m->detail, sizeof(m->detail), "plugin has no deliver()");
        finish(m);
        return;
    }
    m->work.data = m;
    if (uv_queue_work(m->d->loop, &m->work, work_deliver, after_deliver) != 0) {
        retry_later(m, 0);
    }
}

int dispatch_submit(struct dispatch *d, struct dispatch_msg *m, dispatch_done_cb done, void *arg)
{
    m->d = d;
    m->done = done;
    m->done_arg = arg;
    m->provider_pos = 0;
    m->attempt = 0;
    m->interrupted = false;
    m->provider[0] = m->provider_id[0] = m->detail[0] = '\0';
    m->retry_timer = NULL;
    m->next_waiting = NULL;
    d->in_flight++;
    attempt(m);
    return 0;
}

void dispatch_interrupt(struct dispatch *d)
{
    while (d->waiting) {
        struct dispatch_msg *m = d->waiting;
        unlink_waiting(m);
        m->outcome = HERALD_OUTCOME_UNKNOWN;
        m->interrupted = true;
        finish(m);
    }
}

void dispatch_free(struct dispatch *d)
{
    free(d);
}
