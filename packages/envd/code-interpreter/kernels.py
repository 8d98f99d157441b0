# Contexts of the code-interpreter server, one per kernel: Python in an ipykernel driven through
# jupyter_client (Jupyter messaging over ZeroMQ); JavaScript and bash in a persistent process each
# (node_kernel.cjs / a bash reading cells on stdin), since Debian packages no Jupyter kernel for them.
# Every context runs one cell at a time and turns the kernel's messages into E2B's output lines.

import asyncio
import os
import shutil
import signal
import uuid

from jupyter_client.manager import AsyncKernelManager

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_STARTUP = os.path.join(HERE, "kernel_startup.py")
LANGUAGES = ["python", "javascript", "typescript", "bash"]
KNOWN_ELSEWHERE = {"r", "java", "deno"}
POLL_S = 1.0


class UnknownLanguage(Exception):
    pass


def normalize_language(language) -> str:
    if language is None or language == "":
        return "python"
    if not isinstance(language, str):
        raise UnknownLanguage("language must be a string")
    lang = language.strip().lower()
    lang = {"js": "javascript", "ts": "typescript", "sh": "bash", "py": "python", "python3": "python"}.get(lang, lang)
    if lang not in LANGUAGES:
        why = "this template has no kernel for it" if lang in KNOWN_ELSEWHERE else "unknown language"
        raise UnknownLanguage(f"language {language!r} is not available: {why} (available: {', '.join(LANGUAGES)})")
    return lang


def result_of(data: dict, main: bool) -> dict:
    """A Jupyter mime bundle as E2B's result line."""
    data = dict(data)
    out = {"type": "result", "is_main_result": main}
    text = data.pop("text/plain", None)
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    for key, mime in (
        ("text", None),
        ("html", "text/html"),
        ("markdown", "text/markdown"),
        ("svg", "image/svg+xml"),
        ("png", "image/png"),
        ("jpeg", "image/jpeg"),
        ("pdf", "application/pdf"),
        ("latex", "text/latex"),
        ("json", "application/json"),
        ("javascript", "application/javascript"),
        ("data", "e2b/data"),
        ("chart", "e2b/chart"),
    ):
        value = text if mime is None else data.pop(mime, None)
        if value is not None and value != {}:
            out[key] = value
    if data:
        out["extra"] = data
    return out


def env_snippet(language: str, set_vars: dict, unset: list) -> str:
    lines = []
    if language == "python":
        lines += [f"__import__('os').environ[{k!r}] = {v!r}" for k, v in set_vars.items()]
        lines += [f"__import__('os').environ.pop({k!r}, None)" for k in unset]
    elif language in ("javascript", "typescript"):
        lines += [f"process.env[{json_str(k)}] = {json_str(v)};" for k, v in set_vars.items()]
        lines += [f"delete process.env[{json_str(k)}];" for k in unset]
    elif language == "bash":
        lines += [f"export {k}={sh_quote(v)}" for k, v in set_vars.items() if k.isidentifier()]
        lines += [f"unset {k}" for k in unset if k.isidentifier()]
    return "\n".join(lines)


def json_str(s: str) -> str:
    import json

    return json.dumps(s)


def sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


class Context:
    language = "python"

    def __init__(self, cwd: str):
        self.id = str(uuid.uuid4())
        self.cwd = cwd
        self.lock = asyncio.Lock()
        self.generation = 0  # bumped by a restart: a cell of an older generation ends at once
        self.sandbox_applied = False

    def describe(self) -> dict:
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    async def execute(self, code: str, envs: dict, sandbox_envs: dict, emit) -> None:
        async with self.lock:
            try:
                if not self.sandbox_applied and sandbox_envs:
                    await self.run_silent(env_snippet(self.language, sandbox_envs, []))
                self.sandbox_applied = True
                if envs:
                    await self.run_silent(env_snippet(self.language, envs, []))
                await self.run_cell(code, emit)
                if envs:
                    keep = {k: sandbox_envs[k] for k in envs if k in sandbox_envs}
                    await self.run_silent(env_snippet(self.language, keep, [k for k in envs if k not in keep]))
            except Exception as e:
                emit({"type": "error", "name": type(e).__name__, "value": str(e), "traceback": ""})
            finally:
                emit({"type": "end_of_execution"})

    async def run_silent(self, code: str) -> None:
        if code:
            await self.run_cell(code, lambda _item: None, silent=True)


class PythonContext(Context):
    language = "python"

    async def start(self) -> None:
        self.km = AsyncKernelManager(kernel_name="python3")
        # No --matplotlib: ipykernel sets MPLBACKEND to the inline backend, so figures still come
        # back, and matplotlib is imported only by cells that use it (not by every kernel start).
        extra = [f"--IPKernelApp.exec_files={KERNEL_STARTUP}"]
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        await self.km.start_kernel(cwd=self.cwd, extra_arguments=extra, env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=120)

    async def run_cell(self, code: str, emit, silent: bool = False) -> None:
        generation = self.generation
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent, allow_stdin=False, stop_on_error=True)
        errored = False
        while True:
            if generation != self.generation:
                emit({"type": "error", "name": "ContextRestarting", "value": "Context was restarted", "traceback": ""})
                return
            try:
                msg = await self.kc.get_iopub_msg(timeout=POLL_S)
            except Exception:  # queue.Empty: check the kernel is still there
                if not await self.km.is_alive():
                    emit({"type": "error", "name": "KernelDied", "value": "the kernel exited; it was restarted", "traceback": ""})
                    await self.restart()
                    return
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, c = msg["msg_type"], msg["content"]
            stamp = str(msg["header"].get("date", ""))
            if kind == "stream":
                emit({"type": "stdout" if c.get("name") == "stdout" else "stderr", "text": c.get("text", ""), "timestamp": stamp})
            elif kind == "execute_input":
                emit({"type": "number_of_executions", "execution_count": c.get("execution_count")})
            elif kind == "execute_result":
                emit(result_of(c.get("data", {}), True))
            elif kind == "display_data":
                emit(result_of(c.get("data", {}), False))
            elif kind == "error" and not errored:
                errored = True
                emit({"type": "error", "name": c.get("ename", ""), "value": c.get("evalue", ""), "traceback": "\n".join(c.get("traceback", []))})
            elif kind == "status" and c.get("execution_state") == "idle":
                return

    async def interrupt(self) -> None:
        await self.km.interrupt_kernel()

    async def restart(self) -> None:
        self.generation += 1
        self.sandbox_applied = False
        await self.km.restart_kernel(now=True)
        await self.kc.wait_for_ready(timeout=120)

    async def shutdown(self) -> None:
        self.generation += 1
        self.kc.stop_channels()
        await self.km.shutdown_kernel(now=True)


class ProcessContext(Context):
    """A language run by a long-lived process that reads cells on stdin and frames its output."""

    END = "\x1e__wrenn_cell_end__"

    def argv(self) -> list:
        raise NotImplementedError

    def cell(self, code: str, silent: bool) -> bytes:
        raise NotImplementedError

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv(),
            cwd=self.cwd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self.count = 0

    async def run_cell(self, code: str, emit, silent: bool = False) -> None:
        generation = self.generation
        if self.proc.returncode is not None:
            await self.restart()
        if not silent:
            self.count += 1
            emit({"type": "number_of_executions", "execution_count": self.count})
        self.proc.stdin.write(self.cell(code, silent))
        await self.proc.stdin.drain()
        proc = self.proc
        status = await asyncio.gather(
            self.pump(proc.stdout, "stdout", emit, silent), self.pump(proc.stderr, "stderr", emit, silent)
        )
        if generation != self.generation:
            emit({"type": "error", "name": "ContextRestarting", "value": "Context was restarted", "traceback": ""})
            return
        code_status = status[0]
        if code_status is None:
            emit({"type": "error", "name": "KernelDied", "value": f"the {self.language} process exited; it was restarted", "traceback": ""})
            await self.restart()
        elif not silent:
            self.after(code_status, emit)

    def after(self, status: str, emit) -> None:
        pass

    async def pump(self, stream, name: str, emit, silent: bool):
        """Forwards lines until the end marker; returns what follows the marker (None at EOF)."""
        while True:
            line = await stream.readline()
            if not line:
                return None
            text = line.decode("utf-8", "replace")
            at = text.find(self.END)
            if at >= 0:
                if at > 0 and not silent:
                    emit({"type": name, "text": text[:at]})
                return text[at + len(self.END):].strip()
            if not silent:
                emit({"type": name, "text": text})

    async def interrupt(self) -> None:
        if self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGINT)

    async def restart(self) -> None:
        self.generation += 1
        self.sandbox_applied = False
        await self.shutdown()
        await self.start()

    async def shutdown(self) -> None:
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await self.proc.wait()


class BashContext(ProcessContext):
    language = "bash"

    def argv(self) -> list:
        return ["bash", "--noprofile", "--norc"]

    def cell(self, code: str, silent: bool) -> bytes:
        # The cell is read whole by `read -d` (NUL-terminated), then eval'ed in this same shell so
        # variables, functions and the working directory stay.
        end = self.END
        script = (
            f"IFS= read -r -d '' __wrenn_cell; eval \"$__wrenn_cell\"; __wrenn_rc=$?; "
            f"printf '{end}%s\\n' \"$__wrenn_rc\"; printf '{end}%s\\n' \"$__wrenn_rc\" >&2\n"
        )
        return script.encode() + code.encode() + b"\0"

    def after(self, status: str, emit) -> None:
        if status not in ("", "0"):
            emit({"type": "error", "name": "ExitError", "value": f"exit status {status}", "traceback": ""})


class JavascriptContext(ProcessContext):
    language = "javascript"

    def argv(self) -> list:
        node = shutil.which("node") or shutil.which("nodejs") or "node"
        return [node, os.path.join(HERE, "node_kernel.cjs")]

    def cell(self, code: str, silent: bool) -> bytes:
        import json

        return (json.dumps({"code": code, "silent": silent, "typescript": self.language == "typescript"}) + "\n").encode()

    def after(self, status: str, emit) -> None:
        import json

        if not status:
            return
        try:
            outcome = json.loads(status)
        except ValueError:
            return
        if outcome.get("result") is not None:
            emit(result_of(outcome["result"], True))
        if outcome.get("error"):
            e = outcome["error"]
            emit({"type": "error", "name": e.get("name", "Error"), "value": e.get("value", ""), "traceback": e.get("traceback", "")})


class TypescriptContext(JavascriptContext):
    """The JavaScript process with each cell's types stripped first (node_kernel.cjs)."""

    language = "typescript"


async def new_context(language: str, cwd: str) -> Context:
    if not os.path.isdir(cwd):
        raise FileNotFoundError(f"cwd {cwd} is not a directory")
    ctx = {
        "python": PythonContext,
        "bash": BashContext,
        "javascript": JavascriptContext,
        "typescript": TypescriptContext,
    }[language](cwd)
    await ctx.start()
    return ctx
