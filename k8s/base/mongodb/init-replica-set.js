// Idempotent replica set bootstrap, run by the mongodb-init Job with mongosh.
// STEP=initiate (connected directly to member 0): rs.initiate once.
// STEP=users (connected to the replica set): create the services' user once.
const env = process.env;
const members = Array.from({ length: parseInt(env.MONGO_REPLICAS, 10) }, (_, i) => ({
  _id: i,
  host: `mongodb-${i}.mongodb.${env.POD_NAMESPACE}.svc.cluster.local:27017`,
}));

if (env.STEP === "initiate") {
  let initiated = true;
  try {
    rs.status();
  } catch (e) {
    if (e.codeName !== "NotYetInitialized") throw e;
    initiated = false;
  }
  if (initiated) {
    print("replica set already initiated");
  } else {
    rs.initiate({ _id: env.MONGO_REPLICA_SET, members });
    print(`initiated ${env.MONGO_REPLICA_SET} with ${members.length} member(s)`);
  }
} else if (env.STEP === "users") {
  const admin = db.getSiblingDB("admin");
  const roles = [{ role: "readWriteAnyDatabase", db: "admin" }, { role: "clusterMonitor", db: "admin" }];
  if (admin.getUser(env.APP_USERNAME) === null) {
    admin.createUser({ user: env.APP_USERNAME, pwd: env.APP_PASSWORD, roles });
    print(`created user ${env.APP_USERNAME}`);
  } else {
    // Keeps the password in step with the Secret after a rotation.
    admin.updateUser(env.APP_USERNAME, { pwd: env.APP_PASSWORD, roles });
    print(`updated user ${env.APP_USERNAME}`);
  }
} else {
  throw new Error(`unknown STEP ${env.STEP}`);
}
