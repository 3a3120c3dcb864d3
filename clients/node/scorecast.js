'use strict';
// A Node.js client of scorecast.v1 (proto/scorecast.proto): stream a base's chunks to Score as
// Arrow IPC, get each chunk's scores back as an Arrow table. Options: TLS (system roots or a CA
// file, optionally a client certificate) and a bearer token, as the Python client has.

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const arrow = require('apache-arrow');

const PROTO = path.resolve(__dirname, '..', '..', 'proto', 'scorecast.proto');
// Both ends state their message limits: grpc's 4 MiB default refuses ordinary chunks.
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

function loadService() {
  const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  return grpc.loadPackageDefinition(definition).scorecast.v1.Scorecast;
}

function readPem(file) {
  return file ? fs.readFileSync(file) : null;
}

// ScoreOptions from plain values: asOf a Date (unset: the server's now), the rest as in the proto.
function scoreOptions({ asOf, horizonDays, productGroups, modelVersions, churnThreshold, excludeBought, upliftThreshold, buyThreshold } = {}) {
  const options = {};
  if (asOf !== undefined) {
    const ms = asOf.getTime();
    options.as_of = { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
  }
  if (horizonDays !== undefined) options.horizon_days = horizonDays;
  if (productGroups !== undefined) options.product_groups = productGroups;
  if (modelVersions !== undefined) options.model_versions = modelVersions;
  if (churnThreshold !== undefined) options.churn_threshold = churnThreshold;
  if (excludeBought !== undefined) options.exclude_bought = excludeBought;
  if (upliftThreshold !== undefined) options.uplift_threshold = upliftThreshold;
  if (buyThreshold !== undefined) options.buy_threshold = buyThreshold;
  return options;
}

// One chunk ({table name: arrow.Table}) as the proto's ContactChunk: one IPC stream per table.
function encodeChunk(tables) {
  const encoded = {};
  for (const [name, table] of Object.entries(tables)) encoded[name] = Buffer.from(arrow.tableToIPC(table, 'stream'));
  return { tables: encoded };
}

class ScorecastClient {
  // target: 'host:port'. token: sent as 'authorization: Bearer <token>'. TLS when tls, tlsCa
  // or tlsCert/tlsKey (both or neither) is given. timeoutMs: each call's deadline.
  constructor(target, { token, tls = false, tlsCa, tlsCert, tlsKey, timeoutMs } = {}) {
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
  scoreBatch(tables, scores, options = {}) {
    const request = { header: { scores, options: scoreOptions(options) }, chunk: encodeChunk(tables) };
    return new Promise((resolve, reject) => {
      this.stub.ScoreBatch(request, this._metadata(), this._callOptions(), (error, response) => {
        if (error) reject(error);
        else resolve(arrow.tableFromIPC(response.scores));
      });
    });
  }

  // Stream chunks (an iterable or async iterable of {table name: arrow.Table}); yields one
  // arrow.Table of scores per chunk, in order. Writes wait for the stream to drain.
  async *score(chunks, scores, options = {}) {
    const call = this.stub.Score(this._metadata(), this._callOptions());
    let writeError = null;
    const writing = (async () => {
      try {
        if (!call.write({ header: { scores, options: scoreOptions(options) } })) await drained(call);
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
