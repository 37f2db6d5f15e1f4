// The Node side of `cargo xtask better-auth`: a pinned Better Auth (installed from the
// lockfile next to this script's copy in target/better-auth/<version>/) acting on one
// Redis, one action per run, its result printed as one JSON line on stdout.
//
//   node interop.mjs <action> '<json args>'
//
// args always carry { url, prefix }; actions:
//   storage-write   writes through @better-auth/redis-storage: set with TTL, TTL 0,
//                   no TTL; increment (when the version has it)
//   storage-read    { keys }: get each key; getAndDelete of `take` (when present)
//   sign-up         { secret, email }: a real Better Auth instance (memory database,
//                   Redis secondary storage) signs a user up; prints the cookie value
//   get-session     { secret, cookie }: a fresh instance's getSession for the cookie
//   rate-limit      { secret, ip, n }: n POSTs to /sign-in/email from `ip`; statuses
//   revoke-all      { secret, userId }: internalAdapter.deleteUserSessions(userId)
import { Redis } from "ioredis";
import { redisStorage } from "@better-auth/redis-storage";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";

const [action, rawArgs] = process.argv.slice(2);
const args = JSON.parse(rawArgs ?? "{}");
const client = new Redis(args.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
const storage = redisStorage({ client, keyPrefix: args.prefix });

function auth() {
  return betterAuth({
    baseURL: "http://localhost:3000",
    secret: args.secret,
    database: memoryAdapter({ user: [], session: [], account: [], verification: [] }),
    secondaryStorage: storage,
    emailAndPassword: { enabled: true },
    rateLimit: { enabled: true, storage: "secondary-storage" },
    advanced: { ipAddress: { ipAddressHeaders: ["x-client-ip"] } },
    logger: { disabled: true },
  });
}

async function run() {
  switch (action) {
    case "storage-write": {
      await storage.set("with-ttl", "v-ttl", 60);
      await storage.set("ttl-zero", "v-zero", 0);
      await storage.set("no-ttl", "v-none");
      const out = { increment: typeof storage.increment === "function" };
      if (out.increment) {
        out.counts = [await storage.increment("ctr", 10), await storage.increment("ctr", 99)];
        try {
          await storage.increment("ctr", 1.5);
          out.fractional = "accepted";
        } catch (e) {
          out.fractional = e.constructor.name;
        }
      }
      return out;
    }
    case "storage-read": {
      const values = {};
      for (const k of args.keys) values[k] = await storage.get(k);
      const out = { values, getAndDelete: typeof storage.getAndDelete === "function" };
      if (out.getAndDelete) {
        out.taken = [await storage.getAndDelete("take"), await storage.getAndDelete("take")];
      }
      if (typeof storage.increment === "function") {
        out.incremented = await storage.increment("rust-ctr", 10);
      }
      return out;
    }
    case "sign-up": {
      const res = await auth().api.signUpEmail({
        body: { email: args.email, password: "correct horse battery", name: "Interop" },
        asResponse: true,
      });
      const setCookie = res.headers.get("set-cookie") ?? "";
      const m = /better-auth\.session_token=([^;]+)/.exec(setCookie);
      const body = await res.json();
      return { status: res.status, cookie: m?.[1] ?? null, token: body.token, userId: body.user?.id };
    }
    case "get-session": {
      const headers = new Headers({ cookie: `better-auth.session_token=${args.cookie}` });
      const s = await auth().api.getSession({ headers });
      return s ? { token: s.session.token, userId: s.session.userId, email: s.user.email } : null;
    }
    case "rate-limit": {
      const a = auth();
      const statuses = [];
      for (let i = 0; i < args.n; i++) {
        const res = await a.handler(
          new Request("http://localhost:3000/api/auth/sign-in/email", {
            method: "POST",
            headers: { "content-type": "application/json", "x-client-ip": args.ip },
            body: JSON.stringify({ email: "nobody@example.com", password: "wrong password!" }),
          }),
        );
        statuses.push([res.status, res.headers.get("x-retry-after")]);
      }
      return { statuses };
    }
    case "revoke-all": {
      const ctx = await auth().$context;
      await ctx.internalAdapter.deleteUserSessions(args.userId);
      return { ok: true };
    }
    default:
      throw new Error(`unknown action ${action}`);
  }
}

try {
  console.log(JSON.stringify(await run()));
} finally {
  client.disconnect();
}
