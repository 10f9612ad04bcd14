"""Anthropic's Messages API, translated to and from OpenAI's chat completions, the shape
the pipeline and every adapter speak: ``schema`` checks a Messages request, ``inbound``
turns it into a chat request and a chat answer back into a Message, ``events`` turns chat
chunks into Messages stream events, ``errors`` words edgeroute's errors as Anthropic
does, and ``outbound`` does the reverse for upstreams that speak Messages
(``protocol: anthropic``).

Pure: plain dicts in, plain dicts out; no I/O, no pipeline.
"""
