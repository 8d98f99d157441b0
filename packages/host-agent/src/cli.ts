export async function runAgentFromCli(_opts: Record<string, string | undefined>): Promise<void> {
  throw new Error('the host agent is not built yet (issue: host agent and the namespace runtime)');
}
