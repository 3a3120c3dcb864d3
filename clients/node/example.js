'use strict';
// Score a base through scorecast's Score stream and print (or write) the scores.
//
//   node example.js --target 127.0.0.1:50051 --scores rfm,clv [--as-of 2026-01-01T00:00:00Z]
//        [--chunks DIR] [--out DIR] [--token T] [--tls] [--tls-ca ca.pem] [--account A]
//
// --chunks DIR: a folder of chunk folders (000/, 001/, …) each holding <table>.arrow (Arrow IPC
// files or streams); without it a three-contact orders table built here is scored.
// --out DIR: each chunk's scores as DIR/<k>.arrow (Arrow IPC files); else they are printed.

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const arrow = require('apache-arrow');
const { ScorecastClient } = require('./scorecast');

function* chunksFrom(dir) {
  for (const name of fs.readdirSync(dir).sort()) {
    const tables = {};
    for (const file of fs.readdirSync(path.join(dir, name)).sort()) {
      if (file.endsWith('.arrow')) tables[path.basename(file, '.arrow')] = arrow.tableFromIPC(fs.readFileSync(path.join(dir, name, file)));
    }
    yield tables;
  }
}

function tinyBase(asOf) {
  const day = 86_400_000_000n;
  const now = BigInt(asOf.getTime()) * 1000n;
  const orders = arrow.makeTable({
    contact_id: arrow.makeVector(BigInt64Array.from([1n, 1n, 2n, 3n, 3n, 3n])),
    ts: arrow.makeVector({ type: new arrow.TimestampMicrosecond('UTC'), data: BigInt64Array.from([40n, 3n, 200n, 10n, 50n, 90n].map((d) => now - d * day)) }),
    amount: arrow.makeVector(Float64Array.from([20, 35, 12, 80, 15, 40])),
  });
  return [{ orders }];
}

function show(table) {
  const fields = table.schema.fields;
  const text = (value, field) => {
    if (value === null || value === undefined) return '';
    if (arrow.DataType.isTimestamp(field.type)) return new Date(Number(value)).toISOString().slice(0, 10); // ms since the epoch
    if (typeof value === 'number') return String(Number(value.toFixed(4)));
    return String(value);
  };
  console.log(fields.map((f) => f.name).join('\t'));
  for (const row of table.toArray()) console.log(fields.map((f) => text(row[f.name], f)).join('\t'));
}

async function main() {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', default: '127.0.0.1:50051' },
      scores: { type: 'string', default: 'rfm,clv' },
      'as-of': { type: 'string' },
      chunks: { type: 'string' },
      out: { type: 'string' },
      token: { type: 'string' },
      tls: { type: 'boolean', default: false },
      'tls-ca': { type: 'string' },
      account: { type: 'string', default: '' },
    },
  });
  const asOf = values['as-of'] ? new Date(values['as-of']) : new Date();
  const client = new ScorecastClient(values.target, { token: values.token, tls: values.tls, tlsCa: values['tls-ca'], timeoutMs: 600_000, account: values.account });
  const chunks = values.chunks ? chunksFrom(values.chunks) : tinyBase(asOf);
  let index = 0;
  let rows = 0;
  try {
    for await (const scores of client.score(chunks, values.scores.split(','), { asOf })) {
      rows += scores.numRows;
      if (values.out) {
        fs.mkdirSync(values.out, { recursive: true });
        fs.writeFileSync(path.join(values.out, `${String(index).padStart(3, '0')}.arrow`), arrow.tableToIPC(scores, 'file'));
      } else {
        show(scores);
      }
      index += 1;
    }
  } finally {
    client.close();
  }
  console.error(`scored ${rows} contacts in ${index} chunks`);
}

main().catch((error) => {
  console.error(`scorecast: ${error.details || error.message}`);
  process.exit(1);
});
