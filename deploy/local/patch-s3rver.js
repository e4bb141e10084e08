#!/usr/bin/env node
// Fixes s3rver 3.7.1 where it disagrees with real S3 as the Minio .NET SDK 7.0.0 sees it.
// Run after every npm install; each patch is applied once (re-running is a no-op) and the
// script fails loudly if s3rver's source no longer looks as expected.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, 'node_modules', 's3rver', 'lib');
// After a delete, the object's emptied folders go. rmdir alone refuses a folder that is not empty (ENOTEMPTY), atomically,
// so another delete or put at the same time is safe and nothing lists the folder: s3rver listed it on every delete, so
// deleting a job's 10,000 inputs from one folder took minutes of CPU (O(n) per delete).
const EMPTY_FOLDERS = `    // sdd-patch: rmdir refuses a folder that is not empty; another delete may have removed it already
    while (parts.length) {
      try {
        await fs.rmdir(path.join(bucketPath, ...parts));
      } catch (err) {
        if (err.code === 'ENOTEMPTY' || err.code === 'EEXIST') break;
        if (err.code !== 'ENOENT') throw err;
      }
      parts.pop();
    }`;
const patches = [
  {
    why: 'listing XML namespace: the SDK ignores elements outside the real S3 namespace',
    files: ['controllers/bucket.js', 'controllers/service.js', 'controllers/object.js'],
    from: "'http://doc.s3.amazonaws.com/2006-03-01/'",
    to: "'http://s3.amazonaws.com/doc/2006-03-01/'",
    all: true,
  },
  {
    why: 'CopyObject: the SDK percent-encodes "/" in x-amz-copy-source, decodeURI leaves it encoded',
    files: ['controllers/object.js'],
    from: "decodeURI(ctx.headers['x-amz-copy-source'])",
    to: "decodeURIComponent(ctx.headers['x-amz-copy-source'].split('?')[0])",
  },
  {
    why: 'the same, where the first version of that patch (which listed the folder on every delete) was applied',
    files: ['stores/filesystem.js'],
    optional: true,
    from: `    // sdd-patch: another delete may remove or refill the folder at the same time
    while (parts.length) {
      try {
        if (fs.readdirSync(path.join(bucketPath, ...parts)).length) break;
        await fs.rmdir(path.join(bucketPath, ...parts));
      } catch (err) {
        if (err.code !== 'ENOENT' && err.code !== 'ENOTEMPTY') throw err;
      }
      parts.pop();
    }`,
    to: EMPTY_FOLDERS,
  },
  {
    why: 'multi-object delete: parallel deletes race to remove the same empty folder (500)',
    files: ['stores/filesystem.js'],
    from: `    while (
      parts.length &&
      !fs.readdirSync(path.join(bucketPath, ...parts)).length
    ) {
      await fs.rmdir(path.join(bucketPath, ...parts));
      parts.pop();
    }`,
    to: EMPTY_FOLDERS,
  },
  {
    why: 'list continuation token: DES is unavailable in Node >= 17 (OpenSSL 3), listing past 1000 keys failed',
    files: ['controllers/bucket.js'],
    from: 'function generateContinuationToken(bucket, keyName, region) {\n',
    to: "function generateContinuationToken(bucket, keyName, region) {\n  return Buffer.from(`${region}/${bucket}/${keyName}`, 'utf8').toString('base64'); // sdd-patch\n",
  },
  {
    why: 'list continuation token, read side',
    files: ['controllers/bucket.js'],
    from: 'function decipherContinuationToken(token) {\n',
    to: "function decipherContinuationToken(token) {\n  return Buffer.from(token, 'base64').toString('utf8'); // sdd-patch\n",
  },
  {
    why: 'HEAD bucket (the SDK asks before most calls) was served by the GET handler, listing up to 1000 objects',
    files: ['controllers/bucket.js'],
    from: 'exports.getBucket = async function getBucket(ctx) {\n',
    to: "exports.getBucket = async function getBucket(ctx) {\n  if (ctx.method === 'HEAD') { ctx.body = ''; return; } // sdd-patch: existence only\n",
  },
];

let applied = 0;
for (const p of patches) {
  for (const rel of p.files) {
    const file = path.join(root, rel);
    const src = fs.readFileSync(file, 'utf8');
    if (src.includes(p.to) && !src.includes(p.from)) continue; // already patched
    if (p.all ? !src.includes(p.from) : src.includes(p.to)) continue;
    if (p.optional && !src.includes(p.from)) continue; // only an older patch's text is replaced
    if (!src.includes(p.from)) {
      console.error(`patch-s3rver: cannot apply "${p.why}" to ${rel}: source not as expected`);
      process.exit(1);
    }
    fs.writeFileSync(file, p.all ? src.split(p.from).join(p.to) : src.replace(p.from, p.to));
    applied++;
  }
}
if (applied) console.log(`patch-s3rver: applied ${applied} patch(es)`);
