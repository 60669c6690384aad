// Package callback delivers signed outcome events to the URL a request named (callbackUrl): the
// events and their stable ids (Notifier, which puts each event on the callback queue and never
// delays a revocation), and their delivery, one attempt per queue message with its retries
// re-enqueued (Deliverer), through a client that connects only to public addresses. It knows
// nothing of the Functions host: internal/server adapts the queue trigger to it.
package callback
