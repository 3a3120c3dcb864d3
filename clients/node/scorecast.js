'use strict';
// A Node.js client of scorecast.v1 (proto/scorecast.proto): stream a base's chunks to Score as
// Arrow IPC, get each chunk's scores back as an Arrow table. Options: TLS (system roots or a CA
// file, optionally a client certificate), a bearer token and an account, as the Python client
// has. Request options follow the proto's ScoreOptions: a new option there needs no change here.
//
// Faults, as in the Python client (scorecast/retry.py): the target may name several servers
// ('a:50051,b:50051' or a list). A Score stream that drops (UNAVAILABLE, ABORTED) is resumed on
// a new stream, on the next target, after a backoff: the chunks sent and not yet answered (at
// most retry.inFlight) are sent again, each chunk's answer is yielded once, and later streams ask
// for the model versions of the first answer. retry.retries failed streams in a row end the job
// with an error naming the chunks and contacts scored (error.chunks, error.contacts).

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const arrow = require('apache-arrow');

const PROTO = path.resolve(__dirname, '..', '..', 'proto', 'scorecast.proto');
// Both ends state their message limits: grpc's 4 MiB default refuses ordinary chunks.
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const SERVICE = 'scorecast.v1.Scorecast';
const UNARY = ['ListModels', 'GetModel', 'ScoreBatch', 'ReloadModels'];
const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.ABORTED]);
const DEFAULT_RETRY = { retries: 6, backoffMs: 500, multiplier: 2, maxBackoffMs: 8000, inFlight: 4 };
// As the Python client's channels: round robin over a name's addresses, gRPC's own retries of
// the idempotent unary calls, and a reconnect soon after a restarted server is back.
const CHANNEL_OPTIONS = {
  'grpc.service_config': JSON.stringify({
    loadBalancingConfig: [{ round_robin: {} }],
    methodConfig: [{
      name: UNARY.map((method) => ({ service: SERVICE, method })),
      retryPolicy: { maxAttempts: 5, initialBackoff: '0.2s', maxBackoff: '2s', backoffMultiplier: 2, retryableStatusCodes: ['UNAVAILABLE'] },
    }],
  }),
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 2000,
};

let definition = null;
function loadDefinition() {
  definition ??= protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  return definition;
}

function loadService() {
  return grpc.loadPackageDefinition(loadDefinition()).scorecast.v1.Scorecast;
}

function readPem(file) {
  return file ? fs.readFileSync(file) : null;
}

function timestamp(date) {
  const ms = date.getTime();
  return { seconds: String(Math.floor(ms / 1000)), nanos: (((ms % 1000) + 1000) % 1000) * 1e6 };
}

// ScoreOptions from plain values named as its fields, camelCase (horizonDays) or as in the proto
// (horizon_days); a Timestamp field (asOf) takes a Date, unset: the server's now. An unknown
// name throws, listing the options the proto has.
function scoreOptions(values = {}) {
  const fields = new Map(loadDefinition()['scorecast.v1.ScoreOptions'].type.field.map((f) => [f.name, f]));
  const options = {};
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const name = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    const field = fields.get(name);
    if (!field) throw new Error(`unknown option ${key}; the options are ${[...fields.keys()].join(', ')}`);
    options[name] = field.typeName.endsWith('google.protobuf.Timestamp') ? timestamp(value) : value;
  }
  return options;
}

// A ScoreHeader: the scores, the options ({account, ...options}: see scoreOptions) and the
// account (default: the client's).
function scoreHeader(scores, { account, ...options }, defaultAccount) {
  return { scores, options: scoreOptions(options), account: account ?? defaultAccount };
}

// One chunk ({table name: arrow.Table}) as the proto's ContactChunk: one IPC stream per table.
function encodeChunk(tables) {
  const encoded = {};
  for (const [name, table] of Object.entries(tables)) encoded[name] = Buffer.from(arrow.tableToIPC(table, 'stream'));
  return { tables: encoded };
}

class ScorecastClient {
  // target: 'host:port', several comma-separated, or a list of them. token: sent as
  // 'authorization: Bearer <token>'. TLS when tls, tlsCa or tlsCert/tlsKey (both or neither) is
  // given. timeoutMs: each call's deadline. account: the account of each call that names none
  // ('' : the default account). retry: overrides of DEFAULT_RETRY.
  constructor(target, { token, tls = false, tlsCa, tlsCert, tlsKey, timeoutMs, account = '', retry = {} } = {}) {
    if (Boolean(tlsCert) !== Boolean(tlsKey)) throw new Error('tlsCert and tlsKey go together: give both or neither');
    if (token !== undefined && !String(token).trim()) throw new Error('token is empty');
    const credentials = tls || tlsCa || tlsCert
      ? grpc.credentials.createSsl(readPem(tlsCa), readPem(tlsKey), readPem(tlsCert))
      : grpc.credentials.createInsecure();
    const Service = loadService();
    this.targets = (Array.isArray(target) ? target : String(target).split(',')).map((t) => t.trim()).filter(Boolean);
    if (this.targets.length === 0) throw new Error(`no server target in ${JSON.stringify(target)}`);
    this.stubs = this.targets.map((name) => new Service(name, credentials, {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      ...CHANNEL_OPTIONS,
    }));
    this.current = 0;
    this.stub = this.stubs[0];
    this.token = token === undefined ? undefined : String(token).trim();
    this.timeoutMs = timeoutMs;
    this.account = account;
    this.retry = { ...DEFAULT_RETRY, ...retry };
  }

  // Per-call metadata, not call credentials: grpc-js sends those only over TLS, and a token
  // behind a TLS-terminating proxy travels in plaintext to the server.
  _metadata() {
    const metadata = new grpc.Metadata();
    if (this.token) metadata.add('authorization', `Bearer ${this.token}`);
    return metadata;
  }

  _callOptions() {
    return this.timeoutMs ? { deadline: new Date(Date.now() + this.timeoutMs) } : {};
  }

  // A unary call; a target found UNAVAILABLE hands it to the next one (once each).
  async _unary(method, request) {
    for (let k = 0; k < this.stubs.length; k += 1) {
      const which = (this.current + k) % this.stubs.length;
      try {
        const response = await new Promise((resolve, reject) => {
          this.stubs[which][method](request, this._metadata(), this._callOptions(), (error, value) => (error ? reject(error) : resolve(value)));
        });
        this.current = which;
        return response;
      } catch (error) {
        if (error.code !== grpc.status.UNAVAILABLE || k === this.stubs.length - 1) throw error;
      }
    }
    throw new Error('unreachable');
  }

  // Score a small set of contacts in one call (the real-time path): resolves to an arrow.Table.
  // options: request options (see scoreOptions) and account.
  async scoreBatch(tables, scores, options = {}) {
    const request = { header: scoreHeader(scores, options, this.account), chunk: encodeChunk(tables) };
    return arrow.tableFromIPC((await this._unary('ScoreBatch', request)).scores);
  }

  // Wait up to waitMs, less once stub connects (never under minMs).
  async _awaitTarget(stub, waitMs, minMs) {
    const start = Date.now();
    const ready = await new Promise((resolve) => stub.waitForReady(new Date(start + waitMs), (error) => resolve(!error)));
    if (ready) await sleep(Math.max(0, minMs - (Date.now() - start)));
  }

  // Stream chunks (an iterable or async iterable of {table name: arrow.Table}); yields one
  // arrow.Table of scores per chunk, in order, across dropped streams (see the top of this
  // file). options: as in scoreBatch. onEvent({kind: 'answered'|'failed', target, answered, contacts, index, rows, error,
  // retryInMs, nextTarget}) follows the job. Writes wait for the stream to drain.
  async *score(chunks, scores, options = {}, { onEvent } = {}) {
    const retry = this.retry;
    const source = chunks[Symbol.asyncIterator] ? chunks[Symbol.asyncIterator]() : chunks[Symbol.iterator]();
    const pending = []; // encoded chunks sent (or to send) and not answered, oldest first
    let answered = 0;
    let contacts = 0;
    let exhausted = false;
    let sourceError = null;
    let reading = Promise.resolve();
    let signal = deferred();
    const wake = () => { signal.resolve(); signal = deferred(); };
    // one reader of the source at a time: a failed stream's writer may still be reading
    const pull = () => {
      const next = reading.then(async () => {
        if (exhausted || sourceError) return;
        try {
          const item = await source.next();
          if (item.done) exhausted = true;
          else pending.push(encodeChunk(item.value));
        } catch (error) {
          sourceError = error;
        }
        wake();
      });
      reading = next;
      return next;
    };
    let header = scoreHeader(scores, options, this.account); // a bad option throws before any call
    let failures = 0;
    let which = this.current;
    for (;;) {
      const stubIndex = which % this.stubs.length;
      const target = this.targets[stubIndex];
      const call = this.stubs[stubIndex].Score(this._metadata(), this._callOptions());
      let stopped = false;
      const writing = (async () => {
        try {
          // a drain that never comes (the call failed) must not hold the writer: the reader wakes it
          const send = async (message) => { if (!call.write(message)) await Promise.race([drained(call).catch(() => {}), signal.promise]); };
          await send({ header });
          let index = answered;
          while (!stopped) {
            if (index < answered + pending.length) {
              await send({ chunk: pending[index - answered] });
              index += 1;
            } else if (sourceError) {
              call.cancel();
              return;
            } else if (exhausted) {
              call.end();
              return;
            } else if (pending.length >= retry.inFlight) {
              await signal.promise;
            } else {
              await pull();
            }
          }
        } catch (error) {
          // the stream failed: its reader sees the status and retries
        }
      })();
      let k = 0;
      try {
        for await (const response of call) {
          if (Number(response.chunk_index) !== k) throw new Error(`${target} answered chunk ${response.chunk_index} of the stream where ${k} was due`);
          k += 1;
          if (response.models.length && header.options.model_versions === undefined) {
            // later streams ask for the versions this one used
            const versions = Object.fromEntries(response.models.map((m) => [m.score, m.version]));
            header = { ...header, options: { ...header.options, model_versions: versions } };
          }
          const table = arrow.tableFromIPC(response.scores);
          pending.shift();
          answered += 1;
          contacts += table.numRows;
          failures = 0;
          wake();
          if (onEvent) onEvent({ kind: 'answered', target, answered, contacts, index: answered - 1, rows: table.numRows });
          yield table;
        }
        if (sourceError) throw sourceError;
        if (!exhausted || pending.length) throw new Error(`${target} ended the Score stream with ${pending.length} chunks unanswered`);
        return;
      } catch (error) {
        if (sourceError) throw sourceError;
        if (!RETRYABLE.has(error.code)) throw error;
        failures += 1;
        which += 1;
        const status = `${grpc.status[error.code]}: ${error.details}`;
        if (failures > retry.retries) {
          const giveUp = new Error(
            `gave up after ${retry.retries} retries: the last stream to ${target} failed with ${status}; `
            + `${answered} chunks (${contacts} contacts) were scored`,
          );
          Object.assign(giveUp, { chunks: answered, contacts, cause: error });
          throw giveUp;
        }
        const waitMs = Math.min(retry.maxBackoffMs, retry.backoffMs * retry.multiplier ** (failures - 1));
        const next = which % this.stubs.length;
        if (onEvent) onEvent({ kind: 'failed', target, answered, contacts, error: status, retryInMs: waitMs, nextTarget: this.targets[next] });
        await this._awaitTarget(this.stubs[next], waitMs, next === stubIndex ? Math.min(waitMs, retry.backoffMs) : 0);
      } finally {
        stopped = true;
        wake();
        call.cancel();
        await writing;
      }
    }
  }

  close() {
    for (const stub of this.stubs) stub.close();
  }
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  return { promise, resolve };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function drained(call) {
  return new Promise((resolve, reject) => {
    const onDrain = () => { call.off('error', onError); resolve(); };
    const onError = (error) => { call.off('drain', onDrain); reject(error); };
    call.once('drain', onDrain);
    call.once('error', onError);
  });
}

module.exports = { ScorecastClient, encodeChunk, scoreOptions, MAX_MESSAGE_BYTES, DEFAULT_RETRY };
