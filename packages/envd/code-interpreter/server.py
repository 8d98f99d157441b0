#!/usr/bin/env python3
# Wrenn's code-interpreter server: the HTTP protocol of E2B's @e2b/code-interpreter on port 49999
# inside a `code-interpreter-v1` capsule (envd starts it as the template's user). Python runs in
# Jupyter kernels (ipykernel) driven over the Jupyter messaging protocol by Debian's jupyter_client;
# JavaScript and bash run in persistent processes of our own (kernels.py). Written in Python
# because jupyter_client already speaks ZeroMQ + the signed Jupyter messages and ships with the
# kernel we start; tornado (an ipykernel dependency) serves the streamed JSON lines.
#
#   POST /execute {code, context_id?, language?, env_vars?} -> JSON lines: stdout, stderr, result,
#        error, number_of_executions, end_of_execution (a keepalive line each second of silence)
#   POST /contexts {language?, cwd?} -> {id, language, cwd};  GET /contexts
#   POST /contexts/<id>/restart;  DELETE /contexts/<id>;  GET /health

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import urllib.request

import tornado.web
from tornado.iostream import StreamClosedError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernels import (  # noqa: E402
    LANGUAGES,
    Context,
    UnknownLanguage,
    new_context,
    normalize_language,
)

log = logging.getLogger("code-interpreter")
# The sandbox proxy learns that a client left only when it writes to it (a half-closed client may
# still want its response), so a silent cell writes a keepalive line each second: a client gone
# (its timeout) is then noticed, and its cell interrupted, within about two seconds.
KEEPALIVE_S = 1
MAX_BODY = 16 * 1024 * 1024


class State:
    def __init__(self, cwd: str, envd_port: int):
        self.cwd = cwd
        self.envs_url = f"http://127.0.0.1:{envd_port}/envs"
        self.contexts: dict[str, Context] = {}
        # Default context per language, created on first use (python at start).
        self.defaults: dict[str, str] = {}
        self.default_lock = asyncio.Lock()
        self.sandbox_envs: dict[str, str] | None = None

    async def default_for(self, language: str) -> Context:
        async with self.default_lock:
            cid = self.defaults.get(language)
            if cid and cid in self.contexts:
                return self.contexts[cid]
            ctx = await new_context(language, self.cwd)
            self.contexts[ctx.id] = ctx
            self.defaults[language] = ctx.id
            return ctx

    def sandbox_env(self, token: str | None) -> dict[str, str]:
        # The capsule's environment from envd (set at create or connect), read once per server:
        # kernels started before the capsule was handed out do not have it in their own environment.
        if self.sandbox_envs is None:
            req = urllib.request.Request(self.envs_url, headers={"X-Access-Token": token} if token else {})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    data = json.loads(r.read() or b"{}")
                self.sandbox_envs = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
            except Exception as e:  # envd refused (token) or is restarting: try again next time
                log.warning("could not read the capsule environment from envd: %s", e)
                return {}
        return self.sandbox_envs


class Base(tornado.web.RequestHandler):
    state: State

    def initialize(self, state: State) -> None:
        self.state = state

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(message)

    def body_json(self) -> dict:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError as e:
            raise tornado.web.HTTPError(400, reason=f"body is not JSON: {e}")
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, reason="body must be a JSON object")
        return data

    def write_error(self, status_code: int, **kwargs) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(self._reason)


class Health(Base):
    def get(self) -> None:
        self.finish("OK")


def checked_envs(value) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise tornado.web.HTTPError(400, reason="env_vars must be an object of strings")
    for k in value:
        if not k or "=" in k or "\0" in k or "\0" in value[k]:
            raise tornado.web.HTTPError(400, reason=f"env var name {k!r} is invalid")
    return value


class Execute(Base):
    closed = False

    def on_connection_close(self) -> None:
        self.closed = True

    def client_gone(self) -> bool:
        # tornado learns of a close only when it writes (twice, through a proxy): peek instead.
        if self.closed:
            return True
        stream = self.request.connection.stream
        sock = getattr(stream, "socket", None)
        if sock is None:
            return True
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    async def post(self) -> None:
        body = self.body_json()
        code = body.get("code")
        if not isinstance(code, str):
            return self.fail(400, "code must be a string")
        context_id = body.get("context_id")
        language = body.get("language")
        if context_id and language:
            return self.fail(400, "Only one of context_id or language can be provided")
        envs = checked_envs(body.get("env_vars"))
        if context_id:
            ctx = self.state.contexts.get(str(context_id))
            if ctx is None:
                return self.fail(404, f"Context {context_id} not found")
        else:
            try:
                ctx = await self.state.default_for(normalize_language(language))
            except UnknownLanguage as e:
                return self.fail(400, str(e))
            except Exception as e:
                return self.fail(500, f"could not start the {language or 'python'} context: {e}")
        sandbox_envs = self.state.sandbox_env(self.request.headers.get("X-Access-Token"))
        self.set_header("Content-Type", "application/x-ndjson")
        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.ensure_future(ctx.execute(code, envs, sandbox_envs, queue.put_nowait))
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=0.5)
                except asyncio.TimeoutError:
                    if self.client_gone():
                        raise StreamClosedError()
                    if loop.time() - last_write < KEEPALIVE_S:
                        continue
                    # A write now and then also finds a client that vanished without a close.
                    item = {"type": "keepalive"}
                if self.closed:
                    raise StreamClosedError()
                last_write = loop.time()
                self.write(json.dumps(item) + "\n")
                await self.flush()
                if item["type"] == "end_of_execution":
                    break
        except StreamClosedError:
            # The client went away (its timeout, or it was killed): stop the cell so the context is
            # free for the next one.
            log.info("client left during an execution in %s; interrupting", ctx.id)
            await ctx.interrupt()
        finally:
            try:
                await task
            except Exception as e:
                log.error("execution failed: %s", e)
        if not self.closed:
            self.finish()


class Contexts(Base):
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps([c.describe() for c in self.state.contexts.values()]))

    async def post(self) -> None:
        body = self.body_json()
        cwd = body.get("cwd") or self.state.cwd
        if not isinstance(cwd, str) or not cwd.startswith("/"):
            return self.fail(400, "cwd must be an absolute path")
        try:
            language = normalize_language(body.get("language"))
            ctx = await new_context(language, cwd)
        except UnknownLanguage as e:
            return self.fail(400, str(e))
        except Exception as e:
            return self.fail(500, f"could not create the context: {e}")
        self.state.contexts[ctx.id] = ctx
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(ctx.describe()))


class OneContext(Base):
    async def delete(self, cid: str) -> None:
        ctx = self.state.contexts.pop(cid, None)
        if ctx is None:
            return self.fail(404, f"Context {cid} not found")
        for lang, d in list(self.state.defaults.items()):
            if d == cid:
                del self.state.defaults[lang]
        await ctx.shutdown()
        self.set_status(204)
        self.finish()


class Restart(Base):
    async def post(self, cid: str) -> None:
        ctx = self.state.contexts.get(cid)
        if ctx is None:
            return self.fail(404, f"Context {cid} not found")
        try:
            await ctx.restart()
        except Exception as e:
            return self.fail(500, f"Failed to restart context {cid}: {e}")
        self.set_status(204)
        self.finish()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=49999)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--cwd", default=os.path.expanduser("~"))
    ap.add_argument("--envd-port", type=int, default=49983)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="code-interpreter %(levelname)s %(message)s")
    state = State(args.cwd, args.envd_port)
    app = tornado.web.Application(
        [
            (r"/health", Health, {"state": state}),
            (r"/execute", Execute, {"state": state}),
            (r"/contexts", Contexts, {"state": state}),
            (r"/contexts/([A-Za-z0-9-]+)", OneContext, {"state": state}),
            (r"/contexts/([A-Za-z0-9-]+)/restart", Restart, {"state": state}),
        ]
    )
    # The python kernel is started before the port opens: the agent hands the capsule out once
    # the port accepts, so the first runCode never waits for a kernel boot.
    await state.default_for("python")
    # As E2B's: a javascript context is there from the start too (a Node process, ~50 ms).
    await state.default_for("javascript")
    app.listen(args.port, args.host, max_body_size=MAX_BODY)
    log.info("listening on %s:%d (languages: %s)", args.host, args.port, ", ".join(LANGUAGES))
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
