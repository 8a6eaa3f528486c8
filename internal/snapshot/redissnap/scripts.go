package redissnap

import "github.com/redis/go-redis/v9"

// A job is one hash: seq (decimal), fin ("1" once terminal) and env (the
// envelope: snapshot and ETA estimator state). Seq and fin are fields of
// their own so the scripts compare and index without decoding JSON.
//
// Every script takes the same keys and index arguments:
//
//	KEYS[1] job hash
//	KEYS[2] active jobs of the project   KEYS[3] active jobs of the owner
//	KEYS[4] finished jobs of the project KEYS[5] finished jobs of the owner
//	ARGV[1] job id       ARGV[2] fin of the new snapshot ("0" or "1")
//	ARGV[3] score of a finished job (finished_at, ms)
//	ARGV[4] finished jobs kept per index  ARGV[5] TTL of finished jobs (ms)
//
// Active sets score every member 0, so members sort by id, which is
// time-ordered: ZREVRANGE is newest first. Finished sets score by finish
// time, are trimmed to the newest ARGV[4] and expire with the jobs.

// indexLua moves the job between the indexes when it becomes active or
// finished; prevFin is false when the job was not stored.
const indexLua = `
local function index(prevFin)
	local id, fin = ARGV[1], ARGV[2]
	if prevFin == fin then
		return
	end
	if fin == '0' then
		redis.call('ZADD', KEYS[2], 0, id)
		redis.call('ZADD', KEYS[3], 0, id)
		if prevFin == '1' then -- a reloaded job that is active again: keep it
			redis.call('PERSIST', KEYS[1])
			redis.call('ZREM', KEYS[4], id)
			redis.call('ZREM', KEYS[5], id)
		end
		return
	end
	redis.call('ZREM', KEYS[2], id)
	redis.call('ZREM', KEYS[3], id)
	local keep, ttl = tonumber(ARGV[4]), ARGV[5]
	for k = 4, 5 do
		redis.call('ZADD', KEYS[k], ARGV[3], id)
		redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -keep - 1)
		redis.call('PEXPIRE', KEYS[k], ttl)
	end
	redis.call('PEXPIRE', KEYS[1], ttl)
end
`

// putScript stores the snapshot unless the stored one has a seq ≥ its own.
//
//	ARGV[6] seq   ARGV[7] envelope
//
// Returns 1 if stored, 0 if the stored snapshot is as new or newer.
var putScript = redis.NewScript(indexLua + `
local cur = redis.call('HMGET', KEYS[1], 'seq', 'fin')
if cur[1] and tonumber(cur[1]) >= tonumber(ARGV[6]) then
	return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[6], 'fin', ARGV[2], 'env', ARGV[7])
index(cur[2])
return 1
`)

// casScript stores the snapshot only if the stored seq is still the one
// the caller read: the compare-and-set of Update.
//
//	ARGV[6] seq the caller read   ARGV[7] new seq   ARGV[8] envelope
//
// Returns 1 if stored, 0 if the job is gone (expired or deleted), or the
// stored envelope when another writer got there first, so the caller can
// retry without reading it again.
var casScript = redis.NewScript(indexLua + `
local cur = redis.call('HMGET', KEYS[1], 'seq', 'fin')
if not cur[1] then
	return 0
end
if cur[1] ~= ARGV[6] then
	return redis.call('HGET', KEYS[1], 'env')
end
redis.call('HSET', KEYS[1], 'seq', ARGV[7], 'fin', ARGV[2], 'env', ARGV[8])
index(cur[2])
return 1
`)
