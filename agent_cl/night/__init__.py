"""The night: when it runs (`scheduler`), what it does for each tenant (`night` -> `sleep`:
claim, train, gate, publish, swap, mark), what it remembers across a crash (`journal`), how a
candidate is judged (`gate`), and what it leaves for the operator (`reports`, `status`,
`repair`). The training algorithm itself lives in `agent_cl.consolidation`; the versions it
publishes, in `agent_cl.adapters`.
"""
