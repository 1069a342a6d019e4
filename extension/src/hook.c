/*
 * hook.c: the C half of safe_migrations.
 *
 * The ProcessUtility hook, the GUC definitions and the raising of reports live here;
 * the decision lives in Rust (sm_judge_utility, sm_rule_list_is_valid). The hook asks
 * Rust for a verdict, raises it with ereport, and then runs the statement itself, so no
 * Rust frame is on the stack while the statement executes: an error raised beneath us
 * reaches the client with every field (CONTEXT, schema, table, constraint) intact, and
 * no longjmp ever crosses a Rust frame.
 */
#include "postgres.h"

#include "access/xact.h"
#include "optimizer/optimizer.h"
#include "tcop/tcopprot.h"
#include "utils/resowner.h"
#include "catalog/pg_constraint.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/backend_status.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* Must match report::Level in src/verdict.rs. */
#define SM_LEVEL_LOG 0
#define SM_LEVEL_NOTICE 1
#define SM_LEVEL_WARNING 2
#define SM_LEVEL_ERROR 3

/* One message to raise; must match SmReport in src/verdict.rs. */
typedef struct SmReport
{
	int			level;
	char		sqlstate[6];
	const char *message;
	const char *detail;		/* NULL: none */
	const char *hint;		/* NULL: none */
} SmReport;

/* What Rust decided about one statement; must match SmVerdict in src/verdict.rs. */
typedef struct SmVerdict
{
	int			nreports;
	const SmReport *reports;
	int			lock_timeout_ms;	/* > 0: run the statement with this lock_timeout */
	/*
	 * > 0: the transaction holds a lock that blocks traffic, and rule lock_held_too_long
	 * ends it in this many ms unless it ends first (armed once per transaction), with
	 * these reports (message when a statement is cancelled, when an idle session is
	 * terminated; detail and hint of both).
	 */
	int			lock_hold_ms;
	const char *lock_hold_cancelled;
	const char *lock_hold_terminated;
	const char *lock_hold_detail;
	const char *lock_hold_hint;
	/*
	 * Rule lock_timeout's retries (src/retry.rs): 0 run the statement as it is; 1 in an
	 * internal subtransaction, tried again up to lock_retries times when its lock wait
	 * gives up; 2 in one too, not retried (the transaction holds another lock).
	 */
	int			retry_mode;
	int			lock_retries;
} SmVerdict;

/* What to do after an attempt gave up; must match SmRetry in src/retry.rs. */
typedef struct SmRetry
{
	int			pause_ms;		/* >= 0: pause, then try again; -1: raise the report */
	const char *message;
	const char *detail;
	const char *hint;
} SmRetry;

/* Implemented in Rust (src/verdict.rs, src/settings.rs). */
extern SmVerdict *sm_judge_utility(PlannedStmt *pstmt, const char *query_string, int context);
extern SmVerdict *sm_judge_executor(PlannedStmt *pstmt, const char *source_text, int location, int len,
									 double rows_changed);
extern void sm_transaction_ended(void);
extern SmVerdict *sm_transaction_committing(void);
extern SmRetry *sm_lock_wait_gave_up(int attempt);
extern void sm_lock_retries_done(void);
extern SmVerdict *sm_subtransaction_ended(SubTransactionId id, SubTransactionId parent, bool committed);
extern bool sm_rule_list_is_valid(const char *value, char **why);

/*
 * Bumped by every assignment of a safe_migrations.* GUC (SET, RESET, role and database
 * settings at connection, the restore at transaction end): Rust re-reads the settings
 * only when it changed since the last statement.
 */
uint64		sm_settings_generation = 0;

void		sm_define_settings(void);
bool		sm_is_inert_utility(Node *node);
void		sm_install_hook(void);
bool		sm_guard_active(void);
List	   *sm_raw_function_calls(Node *expr, bool *has_sublink);
List	   *sm_validated_check_definitions(Oid relid);
double		sm_plan_rows_changed(RawStmt *raw, const char *sql);

typedef enum SmMode
{
	SM_MODE_OFF,
	SM_MODE_WARN,
	SM_MODE_ENFORCE
} SmMode;

static const struct config_enum_entry sm_mode_options[] = {
	{"off", SM_MODE_OFF, false},
	{"warn", SM_MODE_WARN, false},
	{"enforce", SM_MODE_ENFORCE, false},
	{NULL, 0, false}
};

static const struct config_enum_entry sm_unparsable_options[] = {
	{"reject", 0, false},
	{"allow", 1, false},
	{NULL, 0, false}
};

static int	sm_mode = SM_MODE_OFF;
static int	sm_lock_timeout_cap_ms = 5000;
static int	sm_lock_retries = 3;
static int	sm_lock_retry_delay_ms = 1000;
static char *sm_allow = NULL;
static bool sm_acknowledgements = true;
static int	sm_min_table_rows = 0;
static int	sm_unparsable = 0;
static int	sm_max_rows_per_statement = 50000;
static int	sm_max_lock_hold_ms = 10000;

/*
 * Set by Rust (verdict.rs) while the guard's model of this transaction holds a lock that
 * blocks reads or writes of an existing table; cleared when the transaction ends. The
 * executor hook asks Rust about a write only then, or when the write is large.
 */
bool		sm_transaction_holds_locks = false;

/* Rust's model of this transaction has seen a statement since the transaction began. */
static bool sm_transaction_observed = false;

/*
 * Rule lock_held_too_long: a timer armed when a guarded transaction first holds a lock
 * that blocks traffic. When it fires, the running statement is cancelled, or a session
 * idle in its transaction is terminated, through PostgreSQL's own interrupts (so the
 * transaction ends as a cancel or pg_terminate_backend would end it); the emit_log hook
 * then puts the rule's report in place of PostgreSQL's words for that interrupt.
 */
static TimeoutId sm_lock_hold_timeout = MAX_TIMEOUTS;	/* registered on first use */
/* A second, a grace period later: a cancel that did not end the transaction ends the session. */
static TimeoutId sm_lock_hold_followup = MAX_TIMEOUTS;
#define SM_CANCEL_GRACE_MS 1000
bool		sm_lock_hold_armed = false;	/* read by Rust: no report built while armed */
/* 0: not fired; 1: a cancel was asked for; 2: a termination. Set in the handler. */
static volatile sig_atomic_t sm_lock_hold_fired = 0;
static char *sm_lock_hold_cancelled = NULL; /* in TopMemoryContext while armed */
static char *sm_lock_hold_terminated = NULL;
static char *sm_lock_hold_detail = NULL;
static char *sm_lock_hold_hint = NULL;
/*
 * Warn mode: no timer. The first statement the transaction sends once the budget has
 * run out (its COMMIT at the latest) gets the report (sm_lock_hold_cancelled) as a
 * WARNING.
 */
static bool sm_lock_hold_warn = false;
static TimestampTz sm_lock_hold_due = 0;
/* Warned in this transaction: re-arming (after a subtransaction's abort) warns no more. */
static bool sm_lock_hold_warned = false;
static emit_log_hook_type prev_emit_log_hook = NULL;

static bool sm_hook_installed = false;
static ProcessUtility_hook_type prev_process_utility = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;

/*
 * How many utility statements are running whose queries are not the client's: what
 * REFRESH MATERIALIZED VIEW CONCURRENTLY, an extension's script, an event trigger
 * function fired by DDL, a foreign key's validation run is PostgreSQL's (or the
 * extension's, or the trigger's) work, decided with the statement that runs it. Only
 * the statements that run the client's own query (sm_runs_client_queries) leave it.
 */
static int	sm_internal_depth = 0;

/* The running utility statement that runs the client's query (sm_runs_client_queries). */
static const char *sm_wrapper_source = NULL;
static int	sm_wrapper_location = 0;
static int	sm_wrapper_len = 0;

#if PG_VERSION_NUM >= 140000
#define SM_UTILITY_PARAMS \
	PlannedStmt *pstmt, const char *queryString, bool readOnlyTree, \
	ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv, \
	DestReceiver *dest, QueryCompletion *qc
#define SM_UTILITY_ARGS \
	pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc
#else
#define SM_UTILITY_PARAMS \
	PlannedStmt *pstmt, const char *queryString, \
	ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv, \
	DestReceiver *dest, QueryCompletion *qc
#define SM_UTILITY_ARGS \
	pstmt, queryString, context, params, queryEnv, dest, qc
#endif

/* The allow list is validated by the same parser the proxy and the CLI use. */
static bool
sm_check_allow(char **newval, void **extra, GucSource source)
{
	char	   *why = NULL;

	if (*newval == NULL || sm_rule_list_is_valid(*newval, &why))
		return true;
	GUC_check_errdetail("%s", why);
	return false;
}

static void
sm_int_assigned(int newval, void *extra)
{
	sm_settings_generation++;
}

static void
sm_bool_assigned(bool newval, void *extra)
{
	sm_settings_generation++;
}

static void
sm_string_assigned(const char *newval, void *extra)
{
	sm_settings_generation++;
}

void
sm_define_settings(void)
{
	DefineCustomEnumVariable("safe_migrations.mode",
							 "What the guard does with unsafe DDL: off, warn, enforce.",
							 NULL, &sm_mode, SM_MODE_OFF, sm_mode_options,
							 PGC_SUSET, 0, NULL, sm_int_assigned, NULL);
	DefineCustomIntVariable("safe_migrations.lock_timeout",
							"Upper bound for lock_timeout while a guarded DDL statement runs (0 disables the cap).",
							NULL, &sm_lock_timeout_cap_ms, 5000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, sm_int_assigned, NULL);
	DefineCustomStringVariable("safe_migrations.allow",
							   "Comma-separated rule ids not enforced for this role.",
							   NULL, &sm_allow, "",
							   PGC_SUSET, GUC_LIST_INPUT, sm_check_allow, sm_string_assigned, NULL);
	DefineCustomBoolVariable("safe_migrations.acknowledgements",
							 "Honour inline '-- safe_migrations:allow <rule> -- <reason>' comments.",
							 NULL, &sm_acknowledgements, true,
							 PGC_SUSET, 0, NULL, sm_bool_assigned, NULL);
	DefineCustomIntVariable("safe_migrations.min_table_rows",
							"Lock rules do not apply to tables with fewer estimated rows (0 = always apply).",
							NULL, &sm_min_table_rows, 0, 0, INT_MAX,
							PGC_SUSET, 0, NULL, sm_int_assigned, NULL);
	DefineCustomIntVariable("safe_migrations.max_rows_per_statement",
							"An UPDATE, DELETE or MERGE the planner expects to change more rows is an unbatched backfill (0 = no limit).",
							NULL, &sm_max_rows_per_statement, 50000, 0, INT_MAX,
							PGC_SUSET, 0, NULL, sm_int_assigned, NULL);
	DefineCustomIntVariable("safe_migrations.max_lock_hold",
							"How long a guarded transaction may hold a lock that blocks reads or writes of an existing table (0 = no limit).",
							NULL, &sm_max_lock_hold_ms, 10000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, sm_int_assigned, NULL);
	DefineCustomIntVariable("safe_migrations.lock_retries",
							"How often a guarded statement whose lock wait reaches the lock_timeout cap is tried again.",
							NULL, &sm_lock_retries, 3, 0, 100,
							PGC_SUSET, 0, NULL, sm_int_assigned, NULL);
	DefineCustomIntVariable("safe_migrations.lock_retry_delay",
							"The pause before the first retry; each next pause doubles (at most 30s), less up to half at random.",
							NULL, &sm_lock_retry_delay_ms, 1000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, sm_int_assigned, NULL);
	DefineCustomEnumVariable("safe_migrations.unparsable",
							 "Proxy only: what to do with a statement that does not parse.",
							 NULL, &sm_unparsable, 0, sm_unparsable_options,
							 PGC_SUSET, 0, NULL, sm_int_assigned, NULL);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("safe_migrations");
#else
	EmitWarningsOnPlaceholders("safe_migrations");
#endif
}

static int
sm_elevel(int level)
{
	switch (level)
	{
		case SM_LEVEL_NOTICE:
			return NOTICE;
		case SM_LEVEL_WARNING:
			return WARNING;
		case SM_LEVEL_ERROR:
			return ERROR;
		default:
			return LOG_SERVER_ONLY;
	}
}

/* Raise every report in order; an ERROR, if any, is the last and does not return. */
static void
sm_raise(const SmVerdict *verdict)
{
	int			i;

	for (i = 0; i < verdict->nreports; i++)
	{
		const SmReport *report = &verdict->reports[i];
		const char *s = report->sqlstate;

		ereport(sm_elevel(report->level),
				(errcode(MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4])),
				 errmsg_internal("%s", report->message),
				 report->detail ? errdetail_internal("%s", report->detail) : 0,
				 report->hint ? errhint("%s", report->hint) : 0));
	}
}

static void
sm_run_next(SM_UTILITY_PARAMS)
{
	if (prev_process_utility)
		prev_process_utility(SM_UTILITY_ARGS);
	else
		standard_ProcessUtility(SM_UTILITY_ARGS);
}

/*
 * Run the statement with lock_timeout capped.
 *
 * We set the LockTimeout global rather than the lock_timeout GUC: the global is what
 * ProcSleep reads when it arms the lock timer, so the cap holds whatever the role did
 * with SET, SET LOCAL or set_config() before, and restoring it does not depend on GUC
 * nest levels, which a statement that commits internally would pop under us. If the
 * statement itself assigned lock_timeout (the GUC machinery writes the same global),
 * the value differs from our cap afterwards and we keep what it set.
 */
static void
sm_run_with_lock_timeout(int lock_timeout_ms, SM_UTILITY_PARAMS)
{
	int			saved = LockTimeout;

	LockTimeout = lock_timeout_ms;
	PG_TRY();
	{
		sm_run_next(SM_UTILITY_ARGS);
	}
	PG_FINALLY();
	{
		if (LockTimeout == lock_timeout_ms)
			LockTimeout = saved;
	}
	PG_END_TRY();
}

/* Wait `ms`, as a sleeping statement would: cancels and termination are served. */
static void
sm_pause(int ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);

		if (remaining <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, remaining, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static void sm_arm_lock_hold(const SmVerdict *verdict);
static void sm_disarm_lock_hold(void);

/*
 * Run a capped statement in an internal subtransaction, so that an attempt whose lock
 * wait gives up (lock_not_available) is rolled back alone: it leaves the lock queue at
 * once, the transaction goes on, and Rust (src/retry.rs) says what next: a pause and
 * another attempt, or the error, its report naming the sessions in the way. Every other
 * error, and a cancel during a pause, goes on as it came. Each attempt runs a fresh copy
 * of the statement (ProcessUtility may scribble on the tree it is given).
 */
static void
sm_run_retrying(const SmVerdict *verdict, SM_UTILITY_PARAMS)
{
	MemoryContext caller_context = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;
	PlannedStmt *original = pstmt;

	/*
	 * volatile: a longjmp out of PG_TRY leaves non-volatile locals the compiler kept in
	 * registers indeterminate (-Wclobbered with newer compilers' optimisations).
	 */
	volatile int attempt;

	for (attempt = 1;; attempt++)
	{
		ErrorData  *volatile edata = NULL;
		SmRetry    *next;

		pstmt = copyObject(original);
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(caller_context);
		PG_TRY();
		{
			sm_run_with_lock_timeout(verdict->lock_timeout_ms, SM_UTILITY_ARGS);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(caller_context);
			CurrentResourceOwner = caller_owner;
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(caller_context);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(caller_context);
			CurrentResourceOwner = caller_owner;
		}
		PG_END_TRY();
		if (edata == NULL)
		{
			sm_lock_retries_done();
			return;
		}
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
		{
			sm_lock_retries_done();
			ReThrowError(edata);
		}
		next = sm_lock_wait_gave_up(attempt);
		if (next->pause_ms < 0)
		{
			if (next->message != NULL)
			{
				edata->message = pstrdup(next->message);
				edata->detail = pstrdup(next->detail);
				edata->hint = pstrdup(next->hint);
			}
			ReThrowError(edata);
		}
		/* No lock is held while it pauses: the lock_held_too_long clock starts again. */
		sm_disarm_lock_hold();
		sm_pause(next->pause_ms);
		if (verdict->lock_hold_ms > 0)
			sm_arm_lock_hold(verdict);
	}
}

/*
 * Utility statements that policy::is_inert says no rule reads and no lock_timeout cap
 * applies to: transaction control, SET / RESET / SHOW, DISCARD, and the statements that
 * only wrap queries. The hook lets them through without asking Rust (a migration's
 * BEGIN, COMMIT and SETs are most of its utility statements). The pgrx test
 * `the_hooks_inert_statements_are_inert_to_the_policy` holds this list to the policy.
 */
bool
sm_is_inert_utility(Node *node)
{
	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_VariableSetStmt:
			{
				/* SET / RESET of the guard's own settings: rule policy_change decides. */
				const char *name = ((VariableSetStmt *) node)->name;

				return name == NULL || pg_strncasecmp(name, "safe_migrations.", 16) != 0;
			}
		case T_TransactionStmt:
		case T_VariableShowStmt:
		case T_DiscardStmt:
		case T_ExplainStmt:
		case T_CopyStmt:
		case T_DeclareCursorStmt:
		case T_FetchStmt:
		case T_ClosePortalStmt:
		case T_PrepareStmt:
		case T_ExecuteStmt:
		case T_DeallocateStmt:
		case T_NotifyStmt:
		case T_ListenStmt:
		case T_UnlistenStmt:
		case T_ConstraintsSetStmt:
		case T_CheckPointStmt:
			return true;
		default:
			return false;
	}
}

/*
 * The timer's handler, run in the SIGALRM handler: only flags and the latch. A session
 * idle in its transaction (as pgstat knows it) is terminated; otherwise its statement is
 * cancelled. With track_activities off pgstat cannot tell, and the session is terminated
 * (a cancel would be ignored while it waits for the client).
 */
static void
sm_lock_hold_expired(void)
{
	volatile PgBackendStatus *entry = MyBEEntry;
	bool		running = entry != NULL &&
		entry->st_state != STATE_IDLEINTRANSACTION &&
		entry->st_state != STATE_IDLEINTRANSACTION_ABORTED &&
		entry->st_state != STATE_DISABLED &&
		entry->st_state != STATE_UNDEFINED;

	if (running)
	{
		sm_lock_hold_fired = 1;
		QueryCancelPending = true;
	}
	else
	{
		sm_lock_hold_fired = 2;
		ProcDiePending = true;
	}
	InterruptPending = true;
	SetLatch(MyLatch);
}

/* The follow-up: still armed, so the transaction outlived the cancel. */
static void
sm_lock_hold_escalate(void)
{
	if (!sm_lock_hold_armed)
		return;
	sm_lock_hold_fired = 2;
	ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

static void
sm_free_lock_hold_reports(void)
{
	char	  **texts[] = {&sm_lock_hold_cancelled, &sm_lock_hold_terminated,
	&sm_lock_hold_detail, &sm_lock_hold_hint};
	int			i;

	for (i = 0; i < lengthof(texts); i++)
	{
		if (*texts[i] != NULL)
			pfree(*texts[i]);
		*texts[i] = NULL;
	}
}

/* Arm the timer with the verdict's budget and reports; disarmed when the transaction ends. */
static void
sm_arm_lock_hold(const SmVerdict *verdict)
{
	if (sm_lock_hold_timeout == MAX_TIMEOUTS)
		sm_lock_hold_timeout = RegisterTimeout(USER_TIMEOUT, sm_lock_hold_expired);
	if (sm_lock_hold_followup == MAX_TIMEOUTS)
		sm_lock_hold_followup = RegisterTimeout(USER_TIMEOUT, sm_lock_hold_escalate);
	sm_free_lock_hold_reports();
	sm_lock_hold_cancelled = MemoryContextStrdup(TopMemoryContext, verdict->lock_hold_cancelled);
	sm_lock_hold_terminated = MemoryContextStrdup(TopMemoryContext, verdict->lock_hold_terminated);
	sm_lock_hold_detail = MemoryContextStrdup(TopMemoryContext, verdict->lock_hold_detail);
	sm_lock_hold_hint = MemoryContextStrdup(TopMemoryContext, verdict->lock_hold_hint);
	sm_lock_hold_fired = 0;
	sm_lock_hold_armed = true;
	if (sm_mode == SM_MODE_WARN)
	{
		sm_lock_hold_warn = true;
		sm_lock_hold_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), verdict->lock_hold_ms);
		if (sm_lock_hold_warned)
			sm_free_lock_hold_reports();
		return;
	}
	sm_lock_hold_warn = false;
	enable_timeout_after(sm_lock_hold_timeout, verdict->lock_hold_ms);
	enable_timeout_after(sm_lock_hold_followup,
						 verdict->lock_hold_ms > INT_MAX - SM_CANCEL_GRACE_MS ? INT_MAX : verdict->lock_hold_ms + SM_CANCEL_GRACE_MS);
}

static void
sm_disarm_lock_hold(void)
{
	if (!sm_lock_hold_armed)
		return;
	if (sm_lock_hold_warn)
	{
		sm_lock_hold_warn = false;
		sm_lock_hold_armed = false;
		sm_free_lock_hold_reports();
		return;
	}
	disable_timeout(sm_lock_hold_timeout, false);
	disable_timeout(sm_lock_hold_followup, false);
	/* The transaction ended before our cancel was served: it must not hit the next one. */
	if (sm_lock_hold_fired == 1)
		QueryCancelPending = false;
	sm_lock_hold_armed = false;
	sm_lock_hold_fired = 0;
	sm_free_lock_hold_reports();
}

/*
 * The error a fired timer causes (57014 query_canceled, 57P01 admin_shutdown) gets the
 * rule's report instead of PostgreSQL's words; every other message passes untouched.
 * PostgreSQL calls this hook only for messages it also logs (log_min_messages at ERROR
 * or below, the default WARNING included); above that the client gets PostgreSQL's own.
 */
static void
sm_emit_log(ErrorData *edata)
{
	if (sm_lock_hold_fired != 0 && sm_lock_hold_armed && edata->elevel >= ERROR &&
		(edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN))
	{
		bool		terminated = edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN;

		edata->message = pstrdup(terminated ? sm_lock_hold_terminated : sm_lock_hold_cancelled);
		edata->detail = pstrdup(sm_lock_hold_detail);
		edata->hint = pstrdup(sm_lock_hold_hint);
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* Warn mode: the report, once, at the first statement after the budget ran out. */
static void
sm_lock_hold_warn_if_due(void)
{
	if (!sm_lock_hold_armed || !sm_lock_hold_warn || sm_lock_hold_cancelled == NULL ||
		GetCurrentTimestamp() < sm_lock_hold_due)
		return;
	ereport(WARNING,
			(errcode(MAKE_SQLSTATE('S', 'M', '0', '0', '1')),
			 errmsg_internal("%s", sm_lock_hold_cancelled),
			 sm_lock_hold_detail ? errdetail_internal("%s", sm_lock_hold_detail) : 0,
			 sm_lock_hold_hint ? errhint("%s", sm_lock_hold_hint) : 0));
	/* Warned: nothing more to say in this transaction. */
	sm_lock_hold_warned = true;
	sm_free_lock_hold_reports();
}

/*
 * The hook. Roles whose mode is off, binary upgrade, the sub-commands Postgres
 * generates itself (the index of CREATE TABLE ... PRIMARY KEY) and inert statements
 * cost a comparison or a switch.
 */
static void
sm_decide_and_run(SM_UTILITY_PARAMS)
{
	SmVerdict  *verdict;

	if (sm_lock_hold_warn)
		sm_lock_hold_warn_if_due();

	if (sm_mode == SM_MODE_OFF || IsBinaryUpgrade || context == PROCESS_UTILITY_SUBCOMMAND ||
		sm_is_inert_utility(pstmt->utilityStmt))
	{
		sm_run_next(SM_UTILITY_ARGS);
		return;
	}
	sm_transaction_observed = true;
	verdict = sm_judge_utility(pstmt, queryString, (int) context);
	sm_raise(verdict);
	if (verdict->lock_hold_ms > 0 && !sm_lock_hold_armed)
		sm_arm_lock_hold(verdict);
	if (verdict->lock_timeout_ms > 0 && verdict->retry_mode != 0)
		sm_run_retrying(verdict, SM_UTILITY_ARGS);
	else if (verdict->lock_timeout_ms > 0)
		sm_run_with_lock_timeout(verdict->lock_timeout_ms, SM_UTILITY_ARGS);
	else
		sm_run_next(SM_UTILITY_ARGS);
}

/* Does a utility statement of this kind run a query the client wrote? */
static bool
sm_runs_client_queries(NodeTag tag)
{
	switch (tag)
	{
		case T_DoStmt:
		case T_CallStmt:
		case T_ExecuteStmt:
		case T_ExplainStmt:
		case T_CopyStmt:
		case T_CreateTableAsStmt:
			return true;
		default:
			return false;
	}
}

static void
sm_process_utility(SM_UTILITY_PARAMS)
{
	NodeTag		tag = pstmt->utilityStmt ? nodeTag(pstmt->utilityStmt) : T_Invalid;

	if (sm_mode == SM_MODE_OFF || tag == T_DoStmt || tag == T_CallStmt)
	{
		sm_decide_and_run(SM_UTILITY_ARGS);
		return;
	}
	if (sm_runs_client_queries(tag))
	{
		/*
		 * The query EXPLAIN ANALYZE, COPY (query) or CREATE TABLE AS runs carries no
		 * location of its own before PostgreSQL 18: the executor hook reads this
		 * statement's, for the same query text.
		 */
		const char *saved_source = sm_wrapper_source;
		int			saved_location = sm_wrapper_location;
		int			saved_len = sm_wrapper_len;

		sm_wrapper_source = queryString;
		sm_wrapper_location = pstmt->stmt_location;
		sm_wrapper_len = pstmt->stmt_len;
		PG_TRY();
		{
			sm_decide_and_run(SM_UTILITY_ARGS);
		}
		PG_FINALLY();
		{
			sm_wrapper_source = saved_source;
			sm_wrapper_location = saved_location;
			sm_wrapper_len = saved_len;
		}
		PG_END_TRY();
		return;
	}
	sm_internal_depth++;
	PG_TRY();
	{
		sm_decide_and_run(SM_UTILITY_ARGS);
	}
	PG_FINALLY();
	{
		sm_internal_depth--;
	}
	PG_END_TRY();
}

/*
 * Does the plan write a table: INSERT, UPDATE, DELETE, MERGE, or a query whose WITH does?
 * Rust decides those only while the transaction holds a lock that blocks traffic.
 */
static bool
sm_plan_writes(const PlannedStmt *pstmt)
{
	switch (pstmt->commandType)
	{
		case CMD_INSERT:
		case CMD_UPDATE:
		case CMD_DELETE:
#if PG_VERSION_NUM >= 150000
		case CMD_MERGE:
#endif
			return true;
		case CMD_SELECT:
			return pstmt->hasModifyingCTE;
		default:
			return false;
	}
}

/* The ModifyTable at the top of `plan`: the rows it changes, by the planner's estimate. */
static double
sm_modify_table_rows(const Plan *plan)
{
	const ModifyTable *modify;

	if (plan == NULL || !IsA(plan, ModifyTable))
		return -1;
	modify = (const ModifyTable *) plan;
	if (modify->operation == CMD_INSERT || outerPlan(plan) == NULL)
		return -1;
	/* The ModifyTable's own estimate is 0 without RETURNING: its input's is the count. */
	return outerPlan(plan)->plan_rows;
}

/*
 * The planner's estimate of the rows a plan's UPDATE, DELETE or MERGE changes: the
 * largest over the statement's own and its WITH's (each a subplan); -1 for none.
 */
static double
sm_rows_changed(const PlannedStmt *pstmt)
{
	double		rows = sm_modify_table_rows(pstmt->planTree);
	ListCell   *lc;

	foreach(lc, pstmt->subplans)
		rows = Max(rows, sm_modify_table_rows((const Plan *) lfirst(lc)));
	return rows;
}

/*
 * For safe_migrations.check(): the planner's estimate of the rows a statement changes
 * (-1 for none, or when it does not analyse here: a table the checked string creates
 * earlier, say). Analysed and planned, never run, in a subtransaction rolled back at
 * once, so that neither its locks nor its error outlive the question.
 */
double
sm_plan_rows_changed(RawStmt *raw, const char *sql)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	/* volatile: set inside PG_TRY and read after a longjmp out of it. */
	volatile double rows = -1;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		RawStmt    *copy = copyObject(raw);
		List	   *queries;
		List	   *plans;
		ListCell   *lc;

#if PG_VERSION_NUM >= 150000
		queries = pg_analyze_and_rewrite_fixedparams(copy, sql, NULL, 0, NULL);
#else
		queries = pg_analyze_and_rewrite(copy, sql, NULL, 0, NULL);
#endif
		plans = pg_plan_queries(queries, sql, CURSOR_OPT_PARALLEL_OK, NULL);
		foreach(lc, plans)
		{
			PlannedStmt *planned = lfirst_node(PlannedStmt, lc);

			if (planned->commandType != CMD_UTILITY)
				rows = Max(rows, sm_rows_changed(planned));
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
		{
			/* A cancel or termination is not the statement's to swallow. */
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcontext);
			CurrentResourceOwner = oldowner;
			ReThrowError(edata);
		}
		FreeErrorData(edata);
		rows = -1;
	}
	PG_END_TRY();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(oldcontext);
	CurrentResourceOwner = oldowner;
	return rows;
}

/*
 * The executor hook: a backfill (UPDATE, DELETE, MERGE, INSERT ... SELECT) while the
 * transaction holds a lock a guarded DDL statement took, and an UPDATE, DELETE or MERGE
 * the planner expects to change more than max_rows_per_statement rows. Roles whose mode
 * is off, and plans that write nothing, cost a comparison; other writes a look at the
 * plan's top; Rust is asked only when such a lock is held or the write is large
 * (sm_transaction_holds_locks, which Rust sets). Reports are raised before the executor starts, so a
 * refusal runs nothing. Statements written by the client, a DO block, a function or a
 * procedure are decided; those PostgreSQL runs itself are not: inside a utility
 * statement's own work (sm_internal_depth) or a trigger (foreign key actions run their
 * DELETE and UPDATE as trigger queries; the statement that fires them is decided).
 */
static void
sm_executor_start(QueryDesc *queryDesc, int eflags)
{
	double		rows = -1;
	bool		judge_before = false;
	bool		judge_after = false;
	SmVerdict  *verdict;
	int			location = queryDesc->plannedstmt->stmt_location;
	int			len = queryDesc->plannedstmt->stmt_len;

	if (sm_lock_hold_warn && sm_internal_depth == 0)
		sm_lock_hold_warn_if_due();
	/* A wrapped query without a location of its own: its wrapper's (see above). */
	if (location <= 0 && len == 0 && queryDesc->sourceText == sm_wrapper_source)
	{
		location = sm_wrapper_location;
		len = sm_wrapper_len;
	}

	if (sm_mode != SM_MODE_OFF && !IsBinaryUpgrade && !(eflags & EXEC_FLAG_EXPLAIN_ONLY) &&
		sm_internal_depth == 0 && sm_plan_writes(queryDesc->plannedstmt))
	{
		bool		large;

		rows = sm_rows_changed(queryDesc->plannedstmt);
		large = sm_max_rows_per_statement > 0 && rows > (double) sm_max_rows_per_statement;
		if ((sm_transaction_holds_locks || large) &&
			DatumGetInt32(DirectFunctionCall1(pg_trigger_depth, (Datum) 0)) == 0)
		{
			/*
			 * A write under a held lock is decided before the executor starts, as the
			 * proxy decides it before the statement is sent. A write that is only large
			 * is decided once the executor has started: one the executor refuses on its
			 * own (its permissions, a published table without replica identity) gets
			 * that error, as the proxy's EXPLAIN of it does.
			 */
			judge_before = sm_transaction_holds_locks;
			judge_after = !judge_before;
		}
	}
	if (judge_before && (verdict = sm_judge_executor(queryDesc->plannedstmt, queryDesc->sourceText, location, len, rows)) != NULL)
		sm_raise(verdict);
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
	if (judge_after && (verdict = sm_judge_executor(queryDesc->plannedstmt, queryDesc->sourceText, location, len, rows)) != NULL)
		sm_raise(verdict);
}

/* The transaction's locks are gone once it commits, aborts or is prepared. */
static void
sm_xact_callback(XactEvent event, void *arg)
{
	SmVerdict  *verdict;

	switch (event)
	{
		/*
		 * About to commit (or prepare): renames committed without a view for the old
		 * name are refused here (rule rename_table), which rolls the transaction back.
		 */
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (sm_transaction_observed && (verdict = sm_transaction_committing()) != NULL)
				sm_raise(verdict);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			if (sm_transaction_observed)
				sm_transaction_ended();
			sm_transaction_observed = false;
			sm_transaction_holds_locks = false;
			sm_disarm_lock_hold();
			sm_lock_hold_warned = false;
			break;
		default:
			break;
	}
}

/*
 * A subtransaction's end, while the guard's model holds a lock: an aborted one released
 * the locks taken in it (the lock_held_too_long budget then runs from the first lock
 * still held, or stops), a committed one hands them to its parent. Otherwise (the common
 * case: every PL/pgSQL EXCEPTION block is a subtransaction) a comparison.
 */
static void
sm_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	SmVerdict  *verdict;

	if (!sm_transaction_holds_locks ||
		(event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB))
		return;
	verdict = sm_subtransaction_ended(mySubid, parentSubid, event == SUBXACT_EVENT_COMMIT_SUB);
	if (event == SUBXACT_EVENT_ABORT_SUB && sm_lock_hold_armed)
	{
		sm_disarm_lock_hold();
		if (verdict != NULL && verdict->lock_hold_ms > 0)
			sm_arm_lock_hold(verdict);
	}
}

void
sm_install_hook(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = sm_process_utility;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = sm_executor_start;
	RegisterXactCallback(sm_xact_callback, NULL);
	RegisterSubXactCallback(sm_subxact_callback, NULL);
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = sm_emit_log;
	sm_hook_installed = true;
}

bool
sm_guard_active(void)
{
	return sm_hook_installed;
}

typedef struct SmCallsContext
{
	List	   *calls;
	bool		has_sublink;
} SmCallsContext;

static bool
sm_collect_calls(Node *node, SmCallsContext *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncCall))
		ctx->calls = lappend(ctx->calls, node);
	else if (IsA(node, SubLink))
		ctx->has_sublink = true;
	return raw_expression_tree_walker(node, sm_collect_calls, (void *) ctx);
}

/* Every FuncCall in a raw expression, and whether it contains a subquery. */
List *
sm_raw_function_calls(Node *expr, bool *has_sublink)
{
	SmCallsContext ctx = {NIL, false};

	sm_collect_calls(expr, &ctx);
	*has_sublink = ctx.has_sublink;
	return ctx.calls;
}

/*
 * pg_get_constraintdef() of every validated CHECK constraint of a relation, read from
 * the relcache; NIL when the relation does not exist.
 */
List *
sm_validated_check_definitions(Oid relid)
{
	Relation	rel = RelationIdGetRelation(relid);
	List	   *definitions = NIL;
	TupleConstr *constr;
	int			i;

	if (rel == NULL)
		return NIL;
	constr = RelationGetDescr(rel)->constr;
	for (i = 0; constr != NULL && i < constr->num_check; i++)
	{
		Oid			conoid;

		if (!constr->check[i].ccvalid)
			continue;
		conoid = get_relation_constraint_oid(relid, constr->check[i].ccname, true);
		if (OidIsValid(conoid))
			definitions = lappend(definitions,
								  TextDatumGetCString(DirectFunctionCall1(pg_get_constraintdef,
																		  ObjectIdGetDatum(conoid))));
	}
	RelationClose(rel);
	return definitions;
}
