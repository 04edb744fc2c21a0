/* The native exec agent's loop (exec-agent.c), for the native init (sandbox-init.c) to run in a child. */
#ifndef ALACARTE_EXEC_AGENT_H
#define ALACARTE_EXEC_AGENT_H

/* Runs the agent on the sandbox's run directory `dir`; returns only when it cannot go on. */
int exec_agent_run(const char *dir);

#endif
