"""The apps app's services: every write that matters, one module a subject.

- `applications`: an application's Secret and signing secrets (generation, validation, rotation
  and overlap), create, update and delete, pause and resume, and the callback turned off after
  a 410.
- `links`: device links (link, unlink, remove a device's links), connect links and connections
  (the applications an owner added through one).
- `fanout`: the outbox's events become Delivery rows and their sends are queued (enqueue after
  commit, publish to the broker); the owner's actions on deliveries (retry, replay failed, send
  a test).
- `webhooks`: the request a delivery makes: payload, signatures and headers.
- `sending`: taking an attempt (the lease), the HTTP POST, the retry schedule, recording
  successes and failures, and the due work the beat task queues. Its docstring explains why a
  delivery is at least once and never lost.

Imports between them run one way: sending → webhooks → applications → fanout (sending also
uses applications and fanout directly); the one import against it, of webhooks' `_iso` in
`fanout.delivery_send_test`, is made inside that function.
"""
