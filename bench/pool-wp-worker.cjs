// workerpool's worker script for bench/pool.mjs: the functions of
// bench/pool-tasks.cjs, registered with workerpool.worker().
'use strict';
const workerpool = require('workerpool');
const { inc, incChunk, pid } = require('./pool-tasks.cjs');

workerpool.worker({ inc, incChunk, pid });
