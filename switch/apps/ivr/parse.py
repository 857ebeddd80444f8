"""From YAML nodes to a checked Flow: every verb, every key, every reference.

The file is a mapping:

    start: welcome          # the first step (default: the first one written)
    language: en            # the voice of `say` unless a verb names another
    timezone: Europe/London # the clock of time conditions (default: the tenant's)
    vars: {brand: Demo}     # variables every call starts with
    fallback: operator      # where a call goes when the flow loops without end
    steps:
      welcome:
        - answer
        - say: Welcome
        - goto: menu

Each step is a list of verbs, run in order. A step whose verbs run out
ends the call (hangup). What each verb takes is in README.md ("IVR flows").
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from . import verbs as v
from .fields import KEYS, NULL, VAR_NAME, FlowContext, Ref
from .read import at, kind, pairs, suggest
from .template import Template, literal, parse_template
from .when import Conditions

__all__ = ["VERBS", "FlowContext", "Parser", "Ref", "parse_flow"]

VERBS = (
    "answer", "play", "say", "gather", "menu", "record", "set", "branch", "http", "enqueue",
    "dial", "voicemail", "callback", "notify", "transfer", "hangup", "goto",
)  # fmt: skip
BARE_VERBS = ("answer", "hangup", "voicemail")  # may be written alone: "- answer"
TOP_KEYS = ("steps", "start", "language", "voice", "timezone", "vars", "fallback", "loop_limit")
_STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_URL_START = re.compile(r"https?://[^/?#{}\s]+")


class Parser(Conditions):
    """Reads one flow document; `problems` holds everything wrong with it."""

    def __init__(self, source: str, context: FlowContext) -> None:
        super().__init__(source, context)
        self.steps: dict[str, v.Step] | None = None  # once read
        self._verbs: dict[str, Callable[[Node, Node | None], v.Verb | None]] = {
            name: getattr(self, f"_{name}") for name in VERBS
        }

    # -- verbs -------------------------------------------------------------

    def verb(self, item: Node) -> v.Verb | None:
        value: Node | None
        if isinstance(item, ScalarNode) and item.tag != NULL:
            name, key, value = item.value, item, None
        elif isinstance(item, MappingNode) and item.value:
            (name, key, value), *rest = list(pairs(item))
            if rest:
                extra = rest[0][0]
                self.problem(
                    rest[0][1],
                    f"{name}: {extra!r} is beside the verb, not in it (a list item holds one "
                    f"verb); make it a key of {name}: - {name}: {{..., {extra}: ...}}",
                )
                return None
        else:
            self.problem(
                item,
                f"expected a verb (e.g. - say: Welcome), got {kind(item)}; "
                f"verbs are {', '.join(VERBS)}",
            )
            return None
        if name not in VERBS:
            self.problem(
                key, f"unknown verb {name!r}; {suggest(name, VERBS)}verbs: {', '.join(VERBS)}"
            )
            return None
        if value is not None and isinstance(value, ScalarNode) and value.tag == NULL:
            value = None
        if value is None and name not in BARE_VERBS:
            self.problem(
                key,
                f"{name}: needs a value; see the example in README.md "
                f"(e.g. - {name}: {_EXAMPLES[name]})",
            )
            return None
        return self._verbs[name](key, value)

    def _answer(self, key: Node, value: Node | None) -> v.Verb | None:
        if value is not None and not (isinstance(value, MappingNode) and not value.value):
            self.problem(value, "answer: takes no value; write - answer")
            return None
        return v.Answer(at(key))

    def _play(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        if isinstance(value, MappingNode):
            keys = self.table(value, "play", ("files", "loop", "barge_in"))
            if keys is None:
                return None
            files = self.required(keys, "files", value, "play", "[welcome.wav]")
            loop, barge_in = self.loop_and_barge_in(keys, "play")
        else:
            files, loop, barge_in = value, 1, False
        if files is None:
            return None
        items = files.value if isinstance(files, SequenceNode) else [files]
        if not items:
            self.problem(files, "play: the list of files is empty; name at least one WAV file")
            return None
        sounds = [self.sound(item, "play") for item in items]
        if None in sounds or loop is None or barge_in is None:
            return None
        return v.Play(at(key), tuple(v.Sound(path) for path in sounds if path), loop, barge_in)

    def loop_and_barge_in(
        self, keys: Mapping[str, tuple[Node, Node]], verb: str
    ) -> tuple[int | None, bool | None]:
        loop = (
            self.number(keys["loop"][1], f"{verb}.loop", 0, 100, whole=True)
            if "loop" in keys
            else 1
        )
        barge_in: bool | None = False
        if "barge_in" in keys:
            barge_in = self.boolean(keys["barge_in"][1], f"{verb}.barge_in")
        return loop, barge_in

    def _say(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        if not isinstance(value, MappingNode) or (
            value.value and isinstance(value.value[0][0], MappingNode)
        ):
            text = self.template(value, "say", '"Welcome"')
            return None if text is None else v.Play(at(key), (v.Speak(text, self.default_voice),))
        keys = self.table(value, "say", ("text", "language", "voice", "loop", "barge_in"))
        if keys is None:
            return None
        node = self.required(keys, "text", value, "say", '"Welcome"')
        text = None if node is None else self.template(node, "say.text", '"Welcome"')
        voice = self.item_voice(keys, "say")
        loop, barge_in = self.loop_and_barge_in(keys, "say")
        if text is None or voice is None or loop is None or barge_in is None:
            return None
        return v.Play(at(key), (v.Speak(text, voice),), loop, barge_in)

    def collect_keys(self, keys: Mapping[str, tuple[Node, Node]], verb: str) -> dict[str, Any]:
        """What gather and menu share: prompts, retries, barge-in."""
        out: dict[str, Any] = {}
        for name in ("prompt", "invalid_prompt", "no_input_prompt"):
            if name in keys:
                out[name] = self.prompt(keys[name][1], f"{verb}.{name}")
        if "retries" in keys:
            out["retries"] = self.number(keys["retries"][1], f"{verb}.retries", 0, 10, whole=True)
        if "barge_in" in keys:
            out["barge_in"] = self.boolean(keys["barge_in"][1], f"{verb}.barge_in")
        return out

    def _gather(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        allowed = (
            "prompt",
            "into",
            "min",
            "max",
            "finish_key",
            "first_digit_timeout",
            "inter_digit_timeout",
            "retries",
            "invalid_prompt",
            "no_input_prompt",
            "pattern",
            "barge_in",
            "next",
            "fallback",
        )
        keys = self.table(value, "gather", allowed, "{max: 4, into: account}")
        if keys is None:
            return None
        out = self.collect_keys(keys, "gather")
        if "into" in keys:
            out["into"] = self.var_name(keys["into"][1], "gather.into")
        for name in ("min", "max"):
            if name in keys:
                out[name] = self.number(keys[name][1], f"gather.{name}", 1, 64, whole=True)
        for name, high in (("first_digit_timeout", 120), ("inter_digit_timeout", 60)):
            if name in keys:
                out[name] = self.number(keys[name][1], f"gather.{name}", 0.5, high)
        if "finish_key" in keys:
            out["finish_key"] = self.finish_keys(keys["finish_key"][1], "gather.finish_key", 1)
        if "pattern" in keys:
            out["pattern"] = self.pattern(keys["pattern"][1], "gather.pattern")
        for name in ("next", "fallback"):
            if name in keys:
                out[name] = self.step_ref(keys[name][1], f"gather.{name}")
        if None in out.values():
            return None
        low, high = out.get("min", 1), out.get("max", max(out.get("min", 1), 1))
        if "max" not in out:
            out["max"] = high
        if low > high:
            self.problem(
                keys["min"][1], f"gather.min: {low} is more than max ({high}); make min at most max"
            )
            return None
        return v.Gather(at(key), **out)

    def _menu(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        allowed = (
            "prompt",
            "options",
            "default",
            "timeout",
            "retries",
            "invalid_prompt",
            "no_input_prompt",
            "barge_in",
        )
        keys = self.table(value, "menu", allowed, '{options: {"1": support}, default: support}')
        if keys is None:
            return None
        out = self.collect_keys(keys, "menu")
        if "timeout" in keys:
            out["timeout"] = self.number(keys["timeout"][1], "menu.timeout", 0.5, 120)
        options_node = self.required(keys, "options", value, "menu", '{"1": support, "2": sales}')
        default_node = self.required(keys, "default", value, "menu", "support")
        if options_node is None or default_node is None:
            return None
        out["default"] = self.step_ref(default_node, "menu.default")
        options = self.table(options_node, "menu.options", tuple(KEYS), '{"1": support}')
        if options is None:
            return None
        if not options_node.value:
            self.problem(options_node, 'menu.options: no options; add at least one ("1": support)')
            return None
        targets = {
            name: self.step_ref(node, f"menu.options.{name}") for name, (_, node) in options.items()
        }
        if None in out.values() or None in targets.values():
            return None
        return v.Menu(at(key), options=MappingProxyType(dict(targets)), **out)  # type: ignore[arg-type]

    def _record(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        allowed = ("into", "max_length", "silence", "beep", "finish_keys", "prompt")
        keys = self.table(value, "record", allowed, "{max_length: 120}")
        if keys is None:
            return None
        out: dict[str, Any] = {}
        if "into" in keys:
            out["into"] = self.var_name(keys["into"][1], "record.into")
        if "max_length" in keys:
            out["max_length"] = self.number(keys["max_length"][1], "record.max_length", 1, 3600)
        if "silence" in keys:
            out["silence"] = self.number(keys["silence"][1], "record.silence", 0, 60)
        if "beep" in keys:
            out["beep"] = self.boolean(keys["beep"][1], "record.beep")
        if "finish_keys" in keys:
            out["finish_keys"] = self.finish_keys(keys["finish_keys"][1], "record.finish_keys", 12)
        if "prompt" in keys:
            out["prompt"] = self.prompt(keys["prompt"][1], "record.prompt")
        if None in out.values():
            return None
        return v.Record(at(key), **out)

    def _set(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        if not isinstance(value, MappingNode) or not value.value:
            self.problem(
                value,
                f'set: expected variables (set: {{account: "{{{{ vars.digits }}}}"}}), '
                f"got {kind(value)}; write name: value pairs below set",
            )
            return None
        values: dict[str, Template] = {}
        for name, name_node, node in pairs(value):
            if self.var_name(name_node, "set") is None:
                continue
            if name in values:
                self.problem(name_node, f"set: {name!r} is set twice here; keep one")
                continue
            if isinstance(node, ScalarNode) and node.tag != "tag:yaml.org,2002:str":
                values[name] = literal("" if node.tag == NULL else node.value)
                continue
            template = self.template(node, f"set.{name}", '"gold"')
            if template is not None:
                values[name] = template
        return v.Set(at(key), MappingProxyType(values))

    def _branch(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        example = "- when: {open: office}\n        goto: welcome\n      - else: closed"
        if not isinstance(value, SequenceNode) or not value.value:
            self.problem(
                value,
                f"branch: expected a list of cases, got {kind(value)}; write e.g.\n      {example}",
            )
            return None
        cases: list[v.Case] = []
        otherwise: str | None = None
        ok = True
        for index, item in enumerate(value.value):
            keys = self.table(item, "branch", ("when", "goto", "else"), "{when: ..., goto: step}")
            if keys is None:
                ok = False
                continue
            if "else" in keys:
                if len(keys) > 1 or index != len(value.value) - 1:
                    self.problem(
                        item,
                        "branch: else must be alone, in the last case; "
                        "move it to the end, on its own (- else: step)",
                    )
                    ok = False
                    continue
                otherwise = self.step_ref(keys["else"][1], "branch.else")
                ok = ok and otherwise is not None
                continue
            when = self.required(keys, "when", item, "branch", "{open: office}")
            goto = self.required(keys, "goto", item, "branch", "a_step")
            if when is None or goto is None:
                ok = False
                continue
            condition = self.condition(when, "branch.when")
            target = self.step_ref(goto, "branch.goto")
            if condition is None or target is None:
                ok = False
                continue
            cases.append(v.Case(condition, target, at(item)))
        return v.Branch(at(key), tuple(cases), otherwise) if ok else None

    def _http(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        allowed = ("url", "method", "headers", "body", "timeout", "into", "fallback")
        keys = self.table(value, "http", allowed, '{url: "https://crm.example/lookup"}')
        if keys is None:
            return None
        url_node = self.required(
            keys, "url", value, "http", '"https://crm.example/caller?number={{ caller.number }}"'
        )
        if url_node is None:
            return None
        url = self.template(url_node, "http.url", '"https://crm.example/lookup"')
        out: dict[str, Any] = {}
        if url is not None:
            head = url.parts[0] if url.parts and isinstance(url.parts[0], str) else ""
            if not _URL_START.match(head):
                self.problem(
                    url_node,
                    "http.url: must start with http:// or https:// and a host "
                    "written in the flow (a variable may fill in the path or the query, "
                    "never the host); write e.g. https://crm.example/lookup?n={{ caller.number }}",
                )
                url = None
        if "method" in keys:
            out["method"] = self.choice(keys["method"][1], "http.method", ("GET", "POST", "PUT"))
        if "timeout" in keys:
            out["timeout"] = self.number(keys["timeout"][1], "http.timeout", 0.1, 60)
        if "into" in keys:
            out["into"] = self.var_name(keys["into"][1], "http.into")
        if "fallback" in keys:
            out["fallback"] = self.step_ref(keys["fallback"][1], "http.fallback")
        for name in ("headers", "body"):
            if name in keys:
                out[name] = self.template_table(keys[name][1], f"http.{name}", name == "headers")
        if url is None or None in out.values():
            return None
        return v.Http(at(key), url, **out)

    def _enqueue(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        if isinstance(value, ScalarNode):
            queue = self.queue(value, "enqueue")
            return None if queue is None else v.Enqueue(at(key), queue)
        keys = self.table(value, "enqueue", ("queue", "priority", "skills"), "{queue: support}")
        if keys is None:
            return None
        node = self.required(keys, "queue", value, "enqueue", "support")
        queue = None if node is None else self.queue(node, "enqueue.queue")
        priority = (
            self.number(keys["priority"][1], "enqueue.priority", 0, 100, whole=True)
            if "priority" in keys
            else 0
        )
        skills = self.skills(keys["skills"][1]) if "skills" in keys else {}
        if queue is None or priority is None or skills is None:
            return None
        return v.Enqueue(at(key), queue, priority, MappingProxyType(skills))

    def skills(self, node: Node) -> dict[str, int] | None:
        if isinstance(node, SequenceNode):
            names = [self.text(item, "enqueue.skills", "english") for item in node.value]
            return None if None in names else dict.fromkeys(names, 1)  # type: ignore[arg-type]
        if not isinstance(node, MappingNode):
            self.problem(
                node,
                f"enqueue.skills: expected skills with a level, got {kind(node)}; "
                "write e.g. {mandarin: 5} or [mandarin]",
            )
            return None
        out: dict[str, int] = {}
        for name, _, item in pairs(node):
            level = self.number(item, f"enqueue.skills.{name}", 1, 10, whole=True)
            if level is None:
                return None
            out[name] = level
        return out

    def _dial(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        keys = self.table(
            value,
            "dial",
            ("agent", "extension", "number", "timeout", "fallback"),
            '{agent: "1001", timeout: 20}',
        )
        if keys is None:
            return None
        targets = [name for name in ("agent", "extension", "number") if name in keys]
        if len(targets) != 1:
            self.problem(
                value,
                f"dial: needs exactly one of agent, extension or number "
                f"(found {', '.join(targets) or 'none'}); keep one",
            )
            return None
        which = targets[0]
        target: Template | None
        if which == "agent":
            name = self.named(
                keys["agent"][1],
                "dial.agent",
                "agent",
                self.context.agents,
                'tenants.{tenant}.agents."{name}"',
            )
            target = None if name is None else literal(name)
        else:
            target = self.template(keys[which][1], f"dial.{which}", '"+442079460000"')
        timeout = (
            self.number(keys["timeout"][1], "dial.timeout", 1, 600) if "timeout" in keys else 30.0
        )
        fallback = self.step_ref(keys["fallback"][1], "dial.fallback") if "fallback" in keys else ""
        if target is None or timeout is None or fallback is None:
            return None
        return v.Dial(at(key), which, target, timeout, fallback or None)  # type: ignore[arg-type]

    def _voicemail(self, key: Node, value: Node | None) -> v.Verb | None:
        if value is None:
            return v.Voicemail(at(key), self.context.ivr)
        if isinstance(value, ScalarNode):
            mailbox = self.text(value, "voicemail", "support")
            return None if mailbox is None else v.Voicemail(at(key), mailbox)
        keys = self.table(value, "voicemail", ("mailbox", "greeting"), "{mailbox: support}")
        if keys is None:
            return None
        mailbox = (
            self.text(keys["mailbox"][1], "voicemail.mailbox", "support")
            if "mailbox" in keys
            else self.context.ivr
        )
        greeting = (
            self.prompt(keys["greeting"][1], "voicemail.greeting") if "greeting" in keys else ()
        )
        return None if mailbox is None else v.Voicemail(at(key), mailbox, greeting)

    def _callback(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        keys = self.table(value, "callback", ("queue", "number"), "{queue: support}")
        if keys is None:
            return None
        node = self.required(keys, "queue", value, "callback", "support")
        queue = None if node is None else self.queue(node, "callback.queue")
        number = (
            self.template(keys["number"][1], "callback.number", '"{{ vars.callback_number }}"')
            if "number" in keys
            else parse_template("{{ caller.number }}")
        )
        if queue is None or number is None:
            return None
        return v.Callback(at(key), queue, number)

    def _notify(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        allowed = ("channel", "to", "subject", "body", "attachment")
        keys = self.table(value, "notify", allowed, '{channel: sms, to: "{{ caller.number }}"}')
        if keys is None:
            return None
        nodes = {
            name: self.required(keys, name, value, "notify", example)
            for name, example in (
                ("channel", "email"),
                ("to", '"{{ caller.number }}"'),
                ("body", '"Here is our brochure"'),
            )
        }
        if None in nodes.values():
            return None
        channel = self.choice(nodes["channel"], "notify.channel", ("email", "sms", "fax"))  # type: ignore[arg-type]
        to = self.template(nodes["to"], "notify.to", '"{{ caller.number }}"')  # type: ignore[arg-type]
        body = self.template(nodes["body"], "notify.body", '"Here is our brochure"')  # type: ignore[arg-type]
        subject = attachment = None
        ok = None not in (channel, to, body)
        if "subject" in keys:
            if channel != "email":
                self.problem(
                    keys["subject"][0], "notify.subject: only for channel: email; remove it"
                )
                ok = False
            else:
                subject = self.template(keys["subject"][1], "notify.subject", '"Our brochure"')
                ok = ok and subject is not None
        if "attachment" in keys:
            if channel == "sms":
                self.problem(
                    keys["attachment"][0],
                    "notify.attachment: an SMS has no attachment; remove it, or put a link in body",
                )
                ok = False
            else:
                attachment = self.sound_or_file(keys["attachment"][1], "notify.attachment")
                ok = ok and attachment is not None
        elif channel == "fax":
            self.problem(
                nodes["channel"],
                "notify: a fax needs attachment: the file to send (e.g. brochure.pdf); add it",
            )  # type: ignore[arg-type]
            ok = False
        if not ok:
            return None
        return v.Notify(at(key), channel, to, body, subject, attachment)  # type: ignore[arg-type]

    def _transfer(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        if isinstance(value, MappingNode):
            keys = self.table(value, "transfer", ("to",), '{to: "+442079460000"}')
            if keys is None:
                return None
            value = self.required(keys, "to", value, "transfer", '"+442079460000"')
            if value is None:
                return None
        to = self.template(value, "transfer", '"+442079460000"')
        return None if to is None else v.Transfer(at(key), to)

    def _hangup(self, key: Node, value: Node | None) -> v.Verb | None:
        if value is None:
            return v.Hangup(at(key))
        keys = self.table(value, "hangup", ("reason",), "{reason: closed}")
        if keys is None:
            return None
        reason = (
            self.text(keys["reason"][1], "hangup.reason", "closed") if "reason" in keys else "flow"
        )
        return None if reason is None else v.Hangup(at(key), reason)

    def _goto(self, key: Node, value: Node | None) -> v.Verb | None:
        assert value is not None
        target = self.step_ref(value, "goto")
        return None if target is None else v.Goto(at(key), target)


_EXAMPLES = {
    "play": "welcome.wav",
    "say": '"Welcome"',
    "gather": "{max: 4, into: account}",
    "menu": '{options: {"1": support}, default: support}',
    "record": "{max_length: 60}",
    "set": "{tier: gold}",
    "branch": "[{when: {open: office}, goto: menu}, {else: closed}]",
    "http": '{url: "https://crm.example/lookup?n={{ caller.number }}"}',
    "enqueue": "support",
    "dial": '{agent: "1001"}',
    "callback": "{queue: support}",
    "notify": '{channel: sms, to: "{{ caller.number }}", body: "..."}',
    "transfer": '"+442079460000"',
    "goto": "main_menu",
}


def parse_flow(
    root: Node | None, source: str, digest: str, context: FlowContext
) -> tuple[v.Flow | None, Parser]:
    """The flow of a composed document, and the parser with its problems and references."""
    parser = Parser(source, context)
    if root is None:
        parser.problems.add(
            v.At(1, 1),
            "the file is empty; a flow needs steps: (see the demo "
            "flow, switch/apps/ivr/flows/demo.yaml)",
        )
        return None, parser
    keys = parser.table(root, "flow", TOP_KEYS, "steps: {welcome: [answer, {say: Hello}]}")
    if keys is None:
        return None, parser
    top: dict[str, Any] = {}
    if "language" in keys:
        top["language"] = parser.voice(keys["language"][1], "language")
    if "voice" in keys:
        top["voice"] = parser.voice(keys["voice"][1], "voice")
    parser.default_voice = top.get("voice") or top.get("language") or "en"
    top["timezone"] = context.timezone
    if "timezone" in keys:
        top["timezone"] = _zone(parser, keys["timezone"][1])
    if "loop_limit" in keys:
        top["loop_limit"] = parser.number(
            keys["loop_limit"][1], "loop_limit", 10, 10000, whole=True
        )
    if "vars" in keys:
        top["variables"] = parser.template_table(keys["vars"][1], "vars", False)
        for name in top["variables"] or ():
            if not VAR_NAME.fullmatch(name):
                parser.problem(
                    keys["vars"][1],
                    f"vars: {name!r} is not a variable name; use letters, digits and _",
                )
    if "fallback" in keys:
        top["fallback"] = parser.step_ref(keys["fallback"][1], "fallback")
    start_node = keys["start"][1] if "start" in keys else None
    if start_node is not None:
        top["start"] = parser.step_ref(start_node, "start")
    if "steps" not in keys:
        parser.problem(root, "no steps: a flow needs steps: with at least one step; add steps:")
        return None, parser
    steps_node = keys["steps"][1]
    steps = parser.steps = _steps(parser, steps_node)
    if steps is None:
        return None, parser
    if not steps_node.value:
        parser.problem(
            steps_node, "steps: no steps; add at least one (welcome: [answer, {say: Hello}])"
        )
        return None, parser
    if not steps:
        return None, parser  # every step's name was wrong, and said so
    top.setdefault("start", next(iter(steps)))
    if None in top.values():
        return None, parser
    flow = v.Flow(
        tenant=context.tenant,
        name=context.ivr,
        source=source,
        digest=digest,
        steps=MappingProxyType(steps),
        calendars=MappingProxyType(dict(context.calendars)),
        **top,
    )
    return flow, parser


def _zone(parser: Parser, node: Node) -> str | None:
    name = parser.text(node, "timezone", "Europe/London")
    if name is None:
        return None
    if name != "UTC":
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            hint = suggest(name, sorted(zoneinfo.available_timezones()))
            parser.problem(
                node,
                f"timezone: {name!r} is not an IANA time zone; "
                f"{hint or 'use e.g. UTC, Europe/London or Asia/Shanghai'}".rstrip(),
            )
            return None
    return name


def _steps(parser: Parser, node: Node) -> dict[str, v.Step] | None:
    if not isinstance(node, MappingNode):
        parser.problem(
            node,
            f"steps: expected named steps, got {kind(node)}; write each step "
            "as name: followed by its list of verbs",
        )
        return None
    steps: dict[str, v.Step] = {}
    first: dict[str, Node] = {}
    for name, key, body in pairs(node):
        parser.problems.step = None
        if name in first:
            parser.problem(
                key,
                f"step {name!r} is defined twice (first at line "
                f"{at(first[name]).line}); rename one or merge them",
            )
            continue
        first[name] = key
        if not _STEP_NAME.fullmatch(name):
            parser.problem(
                key,
                f"{name!r} is not a step name; start with a letter "
                "(letters, digits, _ - .), e.g. main_menu",
            )
            continue
        parser.problems.step = name
        if not isinstance(body, SequenceNode) or not body.value:
            empty = isinstance(body, SequenceNode) or (
                isinstance(body, ScalarNode) and body.tag == NULL
            )
            parser.problem(
                key if empty else body,
                f"expected a list of verbs, got "
                f"{'nothing' if empty else kind(body)}; write each verb on its own "
                "line starting with - (e.g. - say: Hello)",
            )
            steps[name] = v.Step(name, at(key), ())
            continue
        verbs = [parser.verb(item) for item in body.value]
        steps[name] = v.Step(name, at(key), tuple(verb for verb in verbs if verb is not None))
    parser.problems.step = None
    return steps
