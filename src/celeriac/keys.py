"""Every key celeriac keeps in the result backend's key-value store, and how long it lives.

The result backend is more than results: its values, counters and sets with TTLs hold the
state that producers, workers and beats share on every broker. The keys are all here, so
their layout can be read in one place (``{}`` is filled in by the user of the key).
"""

from __future__ import annotations

# -- results --------------------------------------------------------------------------------

GROUP_KEY = "celeriac:group:{}"  # a group's member ids (GroupResult.save), by group id

# -- workflows (celeriac.workflow) ----------------------------------------------------------

SENT_KEY = "celeriac:sent:{}"  # a task's callbacks and next step were sent, by task id
CHORD_KEY = "celeriac:chord:{}"  # the header members of a chord that finished, by group id
FIRED_KEY = "celeriac:chord-fired:{}"  # which member sent the chord's body, by group id
CHORD_ADDED_KEY = "celeriac:chord-added:{}"  # "n:id" of members added (Task.add_to_chord)
CHORD_ADDED_COUNT = "celeriac:chord-added-count:{}"  # how many were added, by group id
CHORD_SIZE_KEY = "celeriac:chord-size:{}"  # the size of a header sent as it was generated

# -- revocation (celeriac.control) ----------------------------------------------------------

REVOKED_KEY = "celeriac:revoked:{}"  # by task id: the signal to stop it with, or empty
REVOKED_SET = "celeriac:revoked-ids"  # every id revoked in the last REVOKE_TTL seconds
#: revocations by stamped header (revoke_by_stamped_headers): JSON [name, value, signal]
REVOKED_STAMPS_SET = "celeriac:revoked-stamps"
REVOCATIONS_KEY = "celeriac:revocations"  # bumped by every revoke: workers re-read the set
REVOKE_TTL = 3 * 86400.0

# -- remote control (celeriac.control, celeriac.worker.remote; requests travel in the control
# log, not here) ----------------------------------------------------------------------------

#: what control commands changed in one worker (queues, time limits), by hostname, for its
#: prefork children that consume by themselves; deleted when a worker of that name starts
WORKER_CHANGES_KEY = "celeriac:control:changes:{}"

# -- rate limits (celeriac.rates, celeriac.worker.ratelimit) --------------------------------

RATE_WINDOW_KEY = "celeriac:rate:{}:{}"  # a global limit's counter: task name, window number
RATE_OVERRIDES_KEY = "celeriac:rate-limits"  # limits changed at run time, for every worker

# -- broadcast queues (celeriac.routing) ----------------------------------------------------

BROADCAST_MEMBERS = "celeriac:broadcast:{}"  # the names of workers that consumed the queue
BROADCAST_ALIVE = "celeriac:broadcast:{}:{}"  # present while that worker lives
BROADCAST_MEMBERS_TTL = 86400.0

# -- event subscriptions (celeriac.subscriptions) -------------------------------------------

SUBSCRIBERS_KEY = "celeriac:event:{}"  # the tasks subscribed to an event, by event name
SUBSCRIPTION_TTL = 30 * 86400.0

# -- beat (celeriac.beat) ---------------------------------------------------------------------

BEAT_LEADER_KEY = "celeriac:beat:leader"  # the leading beat's id, under a lease
BEAT_STATE_KEY = "celeriac:beat:state:{}"  # an entry's last run and count, by entry name
BEAT_RUN_KEY = "celeriac:beat:run:{}:{}"  # one run claimed: entry name, scheduled time
BEAT_RUN_KEY_TTL = 7 * 86400.0
