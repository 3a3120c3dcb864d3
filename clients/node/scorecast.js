'use strict';
// A Node.js client of scorecast.v1 (proto/scorecast.proto): stream a base's chunks to Score as
// Arrow IPC, get each chunk's scores back as an Arrow table. Options: TLS (system roots or a CA
// file, optionally a client certificate), a bearer token and an account, as the Python client
// has. Request options follow the proto's ScoreOptions: a new option there needs no change here.

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const arrow = require('apache-arrow');

const PROTO = path.resolve(__dirname, '..', '..', 'proto', 'scorecast.proto');
// Both ends state their message limits: grpc's 4 MiB default refuses ordinary chunks.
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

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
  // target: 'host:port'. token: sent as 'authorization: Bearer <token>'. TLS when tls, tlsCa
  // or tlsCert/tlsKey (both or neither) is given. timeoutMs: each call's deadline. account: the
  // account of each call that names none ('' : the default account).
  constructor(target, { token, tls = false, tlsCa, tlsCert, tlsKey, timeoutMs, account = '' } = {}) {
    if (Boolean(tlsCert) !== Boolean(tlsKey)) throw new Error('tlsCert and tlsKey go together: give both or neither');
    if (token !== undefined && !String(token).trim()) throw new Error('token is empty');
    const credentials = tls || tlsCa || tlsCert
      ? grpc.credentials.createSsl(readPem(tlsCa), readPem(tlsKey), readPem(tlsCert))
      : grpc.credentials.createInsecure();
    const Service = loadService();
    this.stub = new Service(target, credentials, {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    });
    this.token = token === undefined ? undefined : String(token).trim();
    this.timeoutMs = timeoutMs;
    this.account = account;
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

  // Score a small set of contacts in one call (the real-time path): resolves to an arrow.Table.
  // options: request options (see scoreOptions) and account.
  scoreBatch(tables, scores, options = {}) {
    const request = { header: scoreHeader(scores, options, this.account), chunk: encodeChunk(tables) };
    return new Promise((resolve, reject) => {
      this.stub.ScoreBatch(request, this._metadata(), this._callOptions(), (error, response) => {
        if (error) reject(error);
        else resolve(arrow.tableFromIPC(response.scores));
      });
    });
  }

  // Stream chunks (an iterable or async iterable of {table name: arrow.Table}); yields one
  // arrow.Table of scores per chunk, in order. Writes wait for the stream to drain. options: as
  // in scoreBatch.
  async *score(chunks, scores, options = {}) {
    const header = scoreHeader(scores, options, this.account); // a bad option throws before any call
    const call = this.stub.Score(this._metadata(), this._callOptions());
    let writeError = null;
    const writing = (async () => {
      try {
        if (!call.write({ header })) await drained(call);
        for await (const tables of chunks) {
          if (!call.write({ chunk: encodeChunk(tables) })) await drained(call);
        }
        call.end();
      } catch (error) {
        writeError = error;
        call.cancel();
      }
    })();
    try {
      for await (const response of call) yield arrow.tableFromIPC(response.scores);
    } catch (error) {
      throw writeError || error;
    } finally {
      await writing;
    }
    if (writeError) throw writeError;
  }

  close() {
    this.stub.close();
  }
}

function drained(call) {
  return new Promise((resolve, reject) => {
    const onDrain = () => { call.off('error', onError); resolve(); };
    const onError = (error) => { call.off('drain', onDrain); reject(error); };
    call.once('drain', onDrain);
    call.once('error', onError);
  });
}

module.exports = { ScorecastClient, encodeChunk, scoreOptions, MAX_MESSAGE_BYTES };
