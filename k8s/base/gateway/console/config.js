// Rendered by mesh/gateway.py. DEV ONLY: pre-minted tokens for the local mesh.
window.SWITCHBOARD = {
 "devOnly": false,
 "devUsers": []
};
