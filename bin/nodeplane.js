#!/usr/bin/env node
// The nodeplane command under its former name, for callers that spawn this path: the
// command itself is bin/nodeplane.cjs (package.json "bin").
import './nodeplane.cjs';
