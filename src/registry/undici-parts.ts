// The parts of undici the registry client uses, loaded on their own. undici's index loads all of it
// (fetch, WebSocket, cookies, mocks, caches, interceptors): 80–95 ms of every process that talks to
// a registry, a daemon's start among them, where a mount waits. The three dispatchers and the
// request API alone take 26–30 ms. The paths are undici's own files, of the exact version
// package.json pins; test/registry/undici-parts.test.ts fails if an upgrade moves them.
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const require = createRequire(import.meta.url);

const Dispatcher = require('undici/lib/dispatcher/dispatcher') as typeof Undici.Dispatcher;
// what undici's index does: the request API as methods of every dispatcher
Object.assign(Dispatcher.prototype, require('undici/lib/api') as object);

export const Agent = require('undici/lib/dispatcher/agent') as typeof Undici.Agent;
export const ProxyAgent = require('undici/lib/dispatcher/proxy-agent') as typeof Undici.ProxyAgent;
export const EnvHttpProxyAgent = require('undici/lib/dispatcher/env-http-proxy-agent') as typeof Undici.EnvHttpProxyAgent;
export type Agent = Undici.Agent;
