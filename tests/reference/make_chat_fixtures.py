#!/usr/bin/env python3
"""Writes tests/fixtures/chat/expected.json: what transformers'
apply_chat_template(messages, tokenize=False, add_generation_prompt=...)
renders for every conversation below, with the chat template of every
tokenizer_config.json under tests/fixtures/chat/<config>/.

tests/tokenizer/test_chat_template.c checks kvl_chat_render against it byte
for byte.  Regenerate only when a conversation or a config is added or
changed (see tests/fixtures/chat/SOURCES.md for where the configs come from).

    python3 make_chat_fixtures.py [--fixtures DIR] [--out FILE]
    python3 make_chat_fixtures.py --qwen3-config ../../../shared/tokenizers/qwen3/tokenizer_config.json

--qwen3-config copies the real Qwen3 tokenizer_config.json into
<fixtures>/qwen3/ first (the machine with transformers may not have it).

Every tokenizer is loaded by transformers itself from a temporary folder that
holds a trivial tokenizer.json (a WordLevel model with one entry), the
config's chat_template, bos_token and eos_token (copied as they are: strings,
{"content": ...} objects, lists of named templates, or absent) and the
folder's chat_template.jinja if there is one.  transformers therefore decides
how those fields are read.  If from_pretrained fails, the script stops: no
hand-made stand-in is used as the reference.

--engine jinja-dev renders with a local jinja2 environment set up like
transformers' (for development on a machine without transformers); its
output is marked as such and must not be committed as the reference.
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURES = os.path.normpath(os.path.join(HERE, "..", "fixtures", "chat"))

# Conversations rendered with every config, each with
# add_generation_prompt False and True.  They cover the cases where the
# templates differ: system or not, system not first, empty content,
# whitespace that str.strip()/|trim remove (ASCII and Unicode), newlines,
# Qwen3's <think> handling before/after the last user query, tool-response
# lookalike user turns, non-alternating roles (Llama 2 raises), and no
# messages at all.
def m(role, content):
    return {"role": role, "content": content}


CONVERSATIONS = [
    ("user_only", [m("user", "Hello!")]),
    ("system_user", [m("system", "You are a terse assistant."), m("user", "What is 2+2?")]),
    ("multi_turn", [
        m("system", "You are helpful."),
        m("user", "Name a colour."),
        m("assistant", "Blue."),
        m("user", "Another one?"),
    ]),
    ("assistant_last", [
        m("user", "Hi"),
        m("assistant", "Hello! How can I help?"),
        m("user", "Tell me a joke."),
        m("assistant", "Why did the chicken cross the road?"),
    ]),
    ("empty_contents", [m("system", ""), m("user", ""), m("assistant", "")]),
    ("empty_user", [m("user", "")]),
    ("whitespace", [
        m("system", "  padded system \n"),
        m("user", " \t\n lots of space \n\n"),
        m("assistant", "\n\nanswer with newlines\n\n"),
        m("user", "\r\n\x0b\x0c tail \x1c\x1f"),
    ]),
    ("unicode", [
        m("system", "Réponds en français. 🙂"),
        m("user", "\u3000\u00a0Grüße, 世界 — naïve café\u2003\u2029"),
        m("assistant", "\u0085Ça va ✓\u200b"),
        m("user", "\u202f\u205f\u1680ok\u180e"),
    ]),
    ("newlines_inside", [
        m("user", "line one\nline two\n\n  indented\n\tTabbed"),
        m("assistant", "a\n\nb"),
        m("user", "{{ not a tag }} {% raw %} 'single' \"double\" back\\slash <|im_start|> [INST]"),
    ]),
    ("think_history", [
        m("user", "Q1"),
        m("assistant", "<think>\nreasoning one\n</think>\n\nA1"),
        m("user", "Q2"),
    ]),
    ("think_last", [
        m("user", "Q1"),
        m("assistant", "<think>\nreasoning one\n</think>\n\nA1"),
        m("user", "Q2"),
        m("assistant", "<think>\nreasoning two\n</think>\n\nA2"),
    ]),
    ("no_think_last", [m("user", "Q"), m("assistant", "plain answer")]),
    ("think_odd", [
        m("user", "Q"),
        m("assistant", "reason only</think>answer"),
        m("assistant", "<think>a</think>b</think>\n\nc"),
        m("assistant", "<think>\n\n  r  \n\n</think>\n\n\nA\n"),
    ]),
    ("two_assistants", [
        m("user", "Q"),
        m("assistant", "<think>first</think>one"),
        m("assistant", "two"),
    ]),
    ("tool_response_user", [
        m("user", "Q"),
        m("assistant", "<think>r0</think>A"),
        m("user", "<tool_response>42</tool_response>"),
        m("assistant", "<think>r1</think>B"),
    ]),
    ("think_edge", [
        m("user", "<tool_response>partial"),
        m("assistant", "<think>unclosed"),
        m("assistant", "</think>"),
    ]),
    ("long_alternating", [
        m("system", "\ufeffSys\ufeff"),
        m("user", "u1"),
        m("assistant", " a1 "),
        m("user", "u2"),
        m("assistant", "a2"),
        m("user", "u3"),
        m("assistant", "a3"),
        m("user", "u4"),
    ]),
    ("system_then_assistant", [m("system", "S"), m("assistant", "A"), m("user", "U")]),
    ("no_user", [m("system", "S"), m("assistant", "<think>x</think>y")]),
    ("system_only", [m("system", "Only a system prompt.")]),
    ("system_not_first", [m("user", "U1"), m("system", "S2"), m("user", "U2")]),
    ("system_after_system", [m("system", "S1"), m("system", "S2"), m("user", "U")]),
    ("two_users", [m("user", "a"), m("user", "b")]),
    ("assistant_first", [m("assistant", "I speak first."), m("user", "ok")]),
    ("empty", []),
]


def today_string():
    # What transformers' strftime_now("%d %b %Y") gives.
    return datetime.datetime.now().strftime("%d %b %Y")


class JinjaDev:
    """transformers' chat-template environment, for development only."""

    name = "jinja-dev"

    def __init__(self):
        import jinja2
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.version = "jinja2 " + jinja2.__version__

        def raise_exception(message):
            raise jinja2.exceptions.TemplateError(message)

        def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent,
                              separators=separators, sort_keys=sort_keys)

        def strftime_now(fmt):
            return datetime.datetime.now().strftime(fmt)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=[loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = strftime_now
        self.env = env

    def load(self, folder):
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        template = cfg.get("chat_template")
        jinja = os.path.join(folder, "chat_template.jinja")
        if os.path.exists(jinja):
            with open(jinja, encoding="utf-8") as f:
                template = f.read()
        if isinstance(template, list):
            template = {t["name"]: t["template"] for t in template}["default"]
        special = {}
        for key in ("bos_token", "eos_token"):
            v = cfg.get(key)
            if isinstance(v, dict):
                v = v["content"]
            if v is not None:
                special[key] = v
        return (self.env.from_string(template), special)

    def render(self, tok, messages, agp):
        template, special = tok
        return template.render(messages=messages, tools=None, documents=None,
                               add_generation_prompt=agp, **special)


class Transformers:
    """The reference: transformers' own loading and apply_chat_template."""

    name = "transformers"

    def __init__(self):
        import transformers
        import tokenizers
        from tokenizers import Tokenizer, models

        self.version = "transformers %s, tokenizers %s" % (transformers.__version__,
                                                          tokenizers.__version__)
        try:
            import jinja2
            self.version += ", jinja2 " + jinja2.__version__
        except ImportError:
            pass
        self.transformers = transformers
        self.tokenizer_json = Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")).to_str()

    def load(self, folder):
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        tmp = tempfile.mkdtemp(prefix="kvl_chat_")
        small = {"tokenizer_class": "PreTrainedTokenizerFast"}
        for key in ("chat_template", "bos_token", "eos_token"):
            if key in cfg:
                small[key] = cfg[key]
        with open(os.path.join(tmp, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(small, f, ensure_ascii=False)
        with open(os.path.join(tmp, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(self.tokenizer_json)
        jinja = os.path.join(folder, "chat_template.jinja")
        if os.path.exists(jinja):
            shutil.copy(jinja, os.path.join(tmp, "chat_template.jinja"))
        try:
            tok = self.transformers.PreTrainedTokenizerFast.from_pretrained(tmp)
        except Exception as e:  # transformers' own auto class, as a second try
            print("PreTrainedTokenizerFast.from_pretrained failed (%s: %s); trying AutoTokenizer"
                  % (type(e).__name__, e))
            tok = self.transformers.AutoTokenizer.from_pretrained(tmp)
        shutil.rmtree(tmp)
        return tok

    def render(self, tok, messages, agp):
        out = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=agp)
        if not isinstance(out, str):
            raise TypeError("apply_chat_template returned %r, not a string" % type(out))
        return out


def render_case(engine, tok, messages, agp, uses_today):
    before = today_string()
    try:
        text = engine.render(tok, [dict(x) for x in messages], agp)
    except Exception as e:  # the template raised: record the exception
        return {"error": "%s: %s" % (type(e).__name__, e)}
    after = today_string()
    result = {"text": text}
    if uses_today:
        # strftime_now gives the rendering day: store a placeholder so the
        # test can put its own day in.  The rendering must hold the day in
        # the one place the template writes it.
        if before != after:
            raise RuntimeError("the date changed during rendering; run again")
        needle = "Today Date: %s\n\n" % before
        if text.count(needle) != 1:
            raise RuntimeError("expected one %r in %r" % (needle, text))
        result["text"] = text.replace(needle, "Today Date: {{TODAY}}\n\n")
        result["today"] = True
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", default=DEFAULT_FIXTURES)
    ap.add_argument("--out", default=None, help="default: <fixtures>/expected.json")
    ap.add_argument("--qwen3-config", default=None)
    ap.add_argument("--engine", choices=["transformers", "jinja-dev"], default="transformers")
    args = ap.parse_args()

    if args.qwen3_config:
        os.makedirs(os.path.join(args.fixtures, "qwen3"), exist_ok=True)
        shutil.copy(args.qwen3_config, os.path.join(args.fixtures, "qwen3", "tokenizer_config.json"))

    engine = Transformers() if args.engine == "transformers" else JinjaDev()
    configs = sorted(d for d in os.listdir(args.fixtures)
                     if os.path.exists(os.path.join(args.fixtures, d, "tokenizer_config.json")))
    out = {
        "generator": "tests/reference/make_chat_fixtures.py",
        "engine": engine.name,
        "versions": engine.version + ", Python " + sys.version.split()[0],
        "placeholder_today": "{{TODAY}} stands for strftime_now('%d %b %Y') on the rendering day",
        "conversations": [{"name": n, "messages": msgs} for n, msgs in CONVERSATIONS],
        "configs": {},
    }
    for name in configs:
        folder = os.path.join(args.fixtures, name)
        tok = engine.load(folder)
        template = tok.chat_template if engine.name == "transformers" else None
        if isinstance(template, dict):
            template = template.get("default")
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
            raw = f.read()
        jinja = os.path.join(folder, "chat_template.jinja")
        if os.path.exists(jinja):
            with open(jinja, encoding="utf-8") as f:
                raw += f.read()
        uses_today = "strftime_now" in raw
        results = []
        for cname, msgs in CONVERSATIONS:
            pair = [render_case(engine, tok, msgs, agp, uses_today) for agp in (False, True)]
            results.append(pair)
        entry = {"results": results}
        if engine.name == "transformers":
            entry["loaded"] = {
                "bos_token": tok.bos_token,
                "eos_token": tok.eos_token,
                "template_head": (template or "")[:80],
            }
        out["configs"][name] = entry
        n_err = sum(1 for p in results for r in p if "error" in r)
        print("%-14s %3d renderings, %2d raised" % (name, 2 * len(results), n_err))

    path = args.out or os.path.join(args.fixtures, "expected.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", path, "(" + out["versions"] + ")")


if __name__ == "__main__":
    main()
