// What the page's modules share: one client, one followed list, one event hub, and
// what is drawn. One page, one of each.

import { EventHub, FollowList, GenwireClient } from "./genwire.js";

export const KEY_STORAGE = "genwire.apiKey";

export const client = new GenwireClient({ apiKey: localStorage.getItem(KEY_STORAGE) });
export const follow = new FollowList();
export const hub = new EventHub(client, { cursor: follow.cursor });
export const pipelines = new Map(); // name → its description (phases, input schema)
export const jobs = new Map(); // id → JobView
export const projects = new Map(); // id → ProjectView
/** The hub's last "state" detail. */
export const connection = { state: "connecting" };
