// Validates Kubernetes objects (a JSON array on stdin) against the Gateway API's published schemas,
// through @kubernetes-models/gateway-api (generated from the upstream CRDs). Prints one line per
// invalid object and exits 3 if any is invalid (any other non-zero exit is a crash of the validator);
// an object of a kind it has no schema for is invalid.
const kinds = {
  HTTPRoute: require("@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute").HTTPRoute,
};
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  let failed = 0;
  for (const obj of JSON.parse(input)) {
    const name = `${obj.kind}/${(obj.metadata || {}).name}`;
    const Model = kinds[obj.kind];
    if (obj.apiVersion !== "gateway.networking.k8s.io/v1" || !Model) {
      console.log(`${name}: no schema for ${obj.apiVersion} ${obj.kind}`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (error) {
      console.log(`${name}: ${error.message}`);
      failed++;
    }
  }
  process.exit(failed ? 3 : 0);
});
