// A sign-in storm for the bench (SPEC Part 2 "Admin sign-in cannot starve token issuance"): wrong passwords at a
// fixed rate, each from its own address (X-Forwarded-For; the server runs with TRUST_PROXY=true) and email.

export interface Storm {
  /** Stops sending; resolves with how many were sent and the status counts once all answered. */
  stop(): Promise<{ sent: number; statuses: Record<string, number> }>;
}

export function signInStorm(url: string, perSecond: number): Storm {
  const statuses: Record<string, number> = {};
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  const fire = () => {
    const n = sent++;
    const ip = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    const p = fetch(`${url}/admin/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
      body: JSON.stringify({ email: `storm-${n}@example.com`, password: 'not the password' }),
      signal: AbortSignal.timeout(30_000),
    })
      .then(async (res) => {
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      })
      .catch(() => {
        statuses.error = (statuses.error ?? 0) + 1;
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  const started = performance.now();
  // Catch up by wall clock, so timer jitter does not lower the rate.
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
    while (sent < due) fire();
  }, 5);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
      return { sent, statuses };
    },
  };
}

/**
 * The phases' contract (phases.ts, target 4): the same storm, wrong passwords from many addresses and addresses of
 * many unknown administrators at `perSecond`; `email` is not used (one email would hit its throttle at once).
 */
export function startSignInStorm(url: string, options: { perSecond: number; email: string }): { stop(): Promise<{ attempts: number }> } {
  const storm = signInStorm(url, options.perSecond);
  return {
    async stop() {
      const { sent } = await storm.stop();
      return { attempts: sent };
    },
  };
}
