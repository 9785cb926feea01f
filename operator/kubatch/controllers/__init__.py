"""kopf handlers: the operator process (start-up, clean-up, probes) and admission."""
