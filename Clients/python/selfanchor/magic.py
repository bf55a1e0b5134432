"""IPython/Jupyter: `%load_ext selfanchor`, then `%%selfanchor [--strategy S] [--model M] [--task T] [--omega W]
[--max-tokens N]` on a cell whose body is the question. Plans and steps render live in one display that is
updated in place; the cell's value is the result dict."""
import argparse
import html
import shlex

from .client import Client

_clients = {}


def _client(model):
    if model not in _clients:
        _clients[model] = Client(model=model)
    return _clients[model]


def _render(state):
    parts = ["<div style='font-family: sans-serif; line-height: 1.5'>"]
    for kind, index, text in state["lines"]:
        label = {"plan": "Plan", "reason": "Step", "answer": "Answer", "text": ""}[kind]
        style = {"plan": "color:#1f77b4;font-weight:600", "reason": "", "answer": "color:#2ca02c;font-weight:700",
                 "text": "white-space:pre-wrap"}[kind]
        prefix = f"<b>{label} {index}:</b> " if kind in ("plan", "reason") else (f"<b>{label}:</b> " if label else "")
        parts.append(f"<div style='{style}'>{prefix}{html.escape(text)}</div>")
    if state.get("footer"):
        parts.append(f"<div style='color:#777;font-size:85%'>{html.escape(state['footer'])}</div>")
    return "".join(parts) + "</div>"


def _plain(state):
    lines = []
    for kind, index, text in state["lines"]:
        label = {"plan": f"Plan {index}: ", "reason": f"Step {index}: ", "answer": "Answer: ", "text": ""}[kind]
        lines.append(label + text)
    if state.get("footer"):
        lines.append(state["footer"])
    return "\n".join(lines)


class _Live:
    """What a display object shows: HTML in notebooks, text elsewhere."""

    def __init__(self, state):
        self.state = state

    def _repr_html_(self):
        return _render(self.state)

    def __repr__(self):
        return _plain(self.state)


def selfanchor_magic(line, cell):
    from IPython.display import display

    parser = argparse.ArgumentParser(prog="%%selfanchor", add_help=False)
    parser.add_argument("--strategy", default="self-anchor")
    parser.add_argument("--model", default="default")
    parser.add_argument("--task", default=None)
    parser.add_argument("--omega", type=float, default=None)
    parser.add_argument("--max-tokens", type=int, default=None)
    args = parser.parse_args(shlex.split(line))
    options = {}
    if args.omega is not None:
        options["omega"] = args.omega
    if args.max_tokens is not None:
        options["maxTokens"] = args.max_tokens
    state = {"lines": [], "footer": ""}
    handle = display(_Live(state), display_id=True)

    def on_event(event):
        kind = event["event"]
        if kind.endswith("_delta"):
            section = kind[:-len("_delta")]
            index = event["index"]
            if not state["lines"] or state["lines"][-1][:2] != (section, index):
                state["lines"].append((section, index, ""))
            last = state["lines"][-1]
            state["lines"][-1] = (last[0], last[1], last[2] + event["text"])
        elif kind == "answer" and event.get("extracted") is not None:
            state["footer"] = f"extracted answer: {event['extracted']}"
        elif kind == "end":
            timings = event["timings"]
            state["footer"] += f"  ·  {timings['predicted_n']} tokens, {timings['predicted_per_second']:.1f} tokens/s"
        else:
            return
        handle.update(_Live(state))

    return _client(args.model).solve(cell.strip(), strategy=args.strategy, task=args.task, options=options,
                                     on_event=on_event)


def load_ipython_extension(ipython):
    ipython.register_magic_function(selfanchor_magic, magic_kind="cell", magic_name="selfanchor")


def unload_ipython_extension(ipython):
    for client in _clients.values():
        client.close()
    _clients.clear()
