/*
 * persist.h - the camera's durable state, DATA_DIR/state.json.
 *
 * What must survive a power cut: the state (so a camera that reboots in
 * the middle of a recording says so), the next event seq (so the backend
 * sees no seq reused and can ask for gaps), and the MQTT session number
 * (so a late last will of an old session cannot mark a live camera
 * offline). Written with bc_file_write_durable: after a save returns, a
 * power cut leaves either the old or the new file, never a torn one.
 *
 *   {"v":1,"state":"warning","warnings":2,"emergency":false,
 *    "recording_id":"","next_seq":42,"session":7,"since_ms":1764330600123}
 */
#ifndef BC_AGENT_PERSIST_H
#define BC_AGENT_PERSIST_H

#include <stdbool.h>
#include <stdint.h>

#include "device-agent/state_machine.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_PERSIST_FILE "state.json"
#define BC_PERSIST_MAX_BYTES 4096
/* Integers are JSON numbers (doubles): seq, session and times stay below
 * 2^53 so they are exact. */
#define BC_PERSIST_INT_MAX 9007199254740992LL

typedef struct bc_persist_state {
    bc_sm_state state;
    int warnings;                     /* as in bc_sm: 1-2 in WARNING, 0-2 in RECORDING, else 0 */
    bool emergency;                   /* RECORDING only */
    char recording_id[BC_ID_MAX + 1]; /* the open recording, "" when none */
    uint64_t next_seq;                /* the seq the next event gets, >= 1 */
    uint64_t session;                 /* last MQTT session number used, 0 = none yet */
    int64_t since_ms;                 /* when the state was entered (wall clock) */
} bc_persist_state;

/* A fresh camera: STANDBY since now_ms, next_seq 1, session 0. */
void bc_persist_defaults(bc_persist_state *st, int64_t now_ms);

/* Loads data_dir/state.json into *out. A missing file is not an error: *out
 * gets bc_persist_defaults(now_ms), *found = false, BC_OK. A file that is
 * unreadable is BC_ERR_IO; one that is not valid JSON, has a field missing,
 * of the wrong type or out of range, or a state/warnings combination that
 * cannot be, is BC_ERR_PARSE (over BC_PERSIST_MAX_BYTES: BC_ERR_TOO_BIG),
 * and a "v" other than 1 is BC_ERR_VERSION; err names the file and the
 * field. The file is left in place on failure (what to do is the
 * caller's decision), and *out is then the defaults. */
bc_status bc_persist_load(const char *data_dir, int64_t now_ms, bc_persist_state *out, bool *found,
                          bc_error *err);

/* Writes st durably to data_dir/state.json (mode 0600). BC_ERR_INVAL for a
 * state that bc_persist_load would refuse (nothing written), BC_ERR_NOMEM,
 * BC_ERR_IO (errno preserved). */
bc_status bc_persist_save(const char *data_dir, const bc_persist_state *st, bc_error *err);

#endif
