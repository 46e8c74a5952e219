// A thin N-API binding of MPI_COMM_WORLD for data-parallel training (src/parallel/mpi.ts wraps it;
// docs/parallel.md). Everything that moves or adds numbers is Open MPI's: this file only hands it the
// memory of a TypedArray and runs the blocking call off the JavaScript thread.
//
//   init()                  -> { rank, size, localRank, threadLevel }   MPI_Init_thread, once per process
//   allreduceSum(f32)       -> Promise<void>   MPI_Allreduce(MPI_IN_PLACE, MPI_FLOAT, MPI_SUM)
//   broadcast(view, root)   -> Promise<void>   MPI_Bcast of the view's bytes
//   barrier()               -> Promise<void>   MPI_Barrier
//   finalize()              -> Promise<void>   MPI_Finalize
//   abort(code)             -> never returns   MPI_Abort
//
// Threading: collectives run in Napi::AsyncWorker::Execute on libuv's thread pool, so they may run on a
// different thread each time; init/abort run on the JavaScript thread. That needs at least
// MPI_THREAD_SERIALIZED (one MPI call at a time, from any thread); the JavaScript side serialises the
// calls, and the `busy` flag below refuses an overlapping one instead of letting two threads into MPI.

// Open MPI's mpi.h otherwise pulls in its C++ bindings, whose symbols live in libmpi_cxx, which we do
// not link: the addon builds but fails to load ("undefined symbol: _ZN3MPI8Datatype4FreeEv").
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

struct World {
  bool initialized = false;
  bool finalized = false;
  int rank = 0;
  int size = 1;
  int local_rank = 0;
  int thread_level = MPI_THREAD_SINGLE;
  // Elements per MPI call: MPI counts are int, so larger buffers go in slices of at most this many.
  // GET_DISTILL_MPI_MAX_COUNT lowers it, so tests can cover the slicing with small buffers.
  size_t max_count = INT_MAX;
  // Why the world is unusable although MPI_Init_thread returned (too little thread support).
  std::string unusable;
};
World world;
// True while a collective is queued or running (set and cleared on the JavaScript thread).
std::atomic<bool> busy{false};

std::string MpiError(const char* call, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
  return std::string(call) + " failed: " + (len > 0 ? std::string(text, len) : "MPI error " + std::to_string(code));
}

const char* LevelName(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE: return "single";
    case MPI_THREAD_FUNNELED: return "funneled";
    case MPI_THREAD_SERIALIZED: return "serialized";
    case MPI_THREAD_MULTIPLE: return "multiple";
    default: return "unknown";
  }
}

// Throws unless MPI is usable and no other collective is in flight; then marks one in flight.
void Enter(Napi::Env env) {
  if (!world.initialized || !world.unusable.empty()) throw Napi::Error::New(env, "MPI is not initialised (call init first)");
  if (world.finalized) throw Napi::Error::New(env, "MPI was finalised: no collective may follow");
  if (busy.exchange(true)) {
    throw Napi::Error::New(env, "an MPI collective is already in flight: await it before the next one");
  }
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (world.finalized) throw Napi::Error::New(env, "MPI was finalised; it cannot be initialised again");
  if (!world.unusable.empty()) throw Napi::Error::New(env, world.unusable);
  if (!world.initialized) {
    int provided = MPI_THREAD_SINGLE;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) throw Napi::Error::New(env, MpiError("MPI_Init_thread", rc));
    world.initialized = true;
    world.thread_level = provided;
    if (provided < MPI_THREAD_SERIALIZED) {
      world.unusable = std::string("MPI provides only MPI_THREAD_") + LevelName(provided) +
                       "; collectives on libuv's thread pool need at least MPI_THREAD_SERIALIZED";
      throw Napi::Error::New(env, world.unusable);
    }
    // Failures come back as return codes (a rejected promise) instead of aborting inside the library.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    // mpirun tells each rank its index on the node; elsewhere ask MPI for the ranks sharing memory.
    if (const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) {
      world.local_rank = std::atoi(local);
    } else {
      MPI_Comm node;
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world.rank, MPI_INFO_NULL, &node);
      MPI_Comm_rank(node, &world.local_rank);
      MPI_Comm_free(&node);
    }
    if (const char* max = std::getenv("GET_DISTILL_MPI_MAX_COUNT")) {
      long long n = std::atoll(max);
      if (n > 0 && n < INT_MAX) world.max_count = static_cast<size_t>(n);
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("rank", world.rank);
  out.Set("size", world.size);
  out.Set("localRank", world.local_rank);
  out.Set("threadLevel", LevelName(world.thread_level));
  return out;
}

// A blocking MPI call on the thread pool whose outcome settles a promise. `keep` holds the JavaScript
// object that owns the memory MPI reads and writes, so the garbage collector cannot free it meanwhile.
class Collective : public Napi::AsyncWorker {
 public:
  Collective(Napi::Env env, const char* name, Napi::Object keep = Napi::Object())
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {
    if (!keep.IsEmpty()) keep_ = Napi::Persistent(keep);
  }
  Napi::Promise Start() {
    Napi::Promise promise = deferred_.Promise();
    Queue();
    return promise;
  }

 protected:
  void Check(const char* call, int rc) {
    if (rc != MPI_SUCCESS) SetError(MpiError(call, rc));
  }
  void OnOK() override {
    busy = false;
    deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    busy = false;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference keep_;
};

class Allreduce : public Collective {
 public:
  Allreduce(Napi::Env env, Napi::TypedArray buf)
      : Collective(env, "mpi.allreduceSum", buf),
        data_(static_cast<float*>(buf.ArrayBuffer().Data()) + buf.ByteOffset() / sizeof(float)),
        count_(buf.ElementLength()) {}
  void Execute() override {
    for (size_t off = 0; off < count_; off += world.max_count) {
      int n = static_cast<int>(std::min(world.max_count, count_ - off));
      int rc = MPI_Allreduce(MPI_IN_PLACE, data_ + off, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      if (rc != MPI_SUCCESS) return Check("MPI_Allreduce", rc);
    }
  }

 private:
  float* data_;
  size_t count_;
};

class Broadcast : public Collective {
 public:
  Broadcast(Napi::Env env, Napi::Object owner, uint8_t* data, size_t bytes, int root)
      : Collective(env, "mpi.broadcast", owner), data_(data), bytes_(bytes), root_(root) {}
  void Execute() override {
    for (size_t off = 0; off < bytes_; off += world.max_count) {
      int n = static_cast<int>(std::min(world.max_count, bytes_ - off));
      int rc = MPI_Bcast(data_ + off, n, MPI_BYTE, root_, MPI_COMM_WORLD);
      if (rc != MPI_SUCCESS) return Check("MPI_Bcast", rc);
    }
  }

 private:
  uint8_t* data_;
  size_t bytes_;
  int root_;
};

class Barrier : public Collective {
 public:
  explicit Barrier(Napi::Env env) : Collective(env, "mpi.barrier") {}
  void Execute() override { Check("MPI_Barrier", MPI_Barrier(MPI_COMM_WORLD)); }
};

class Finalize : public Collective {
 public:
  explicit Finalize(Napi::Env env) : Collective(env, "mpi.finalize") {}
  void Execute() override { Check("MPI_Finalize", MPI_Finalize()); }
};

Napi::Value AllreduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(env, "allreduceSum takes a Float32Array");
  }
  Enter(env);
  return (new Allreduce(env, info[0].As<Napi::TypedArray>()))->Start();
}

Napi::Value BroadcastBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int root = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  if (world.initialized && (root < 0 || root >= world.size)) {
    throw Napi::RangeError::New(env, "broadcast root " + std::to_string(root) + " is not a rank of a world of " +
                                         std::to_string(world.size));
  }
  uint8_t* data;
  size_t bytes;
  if (info[0].IsTypedArray()) {
    Napi::TypedArray view = info[0].As<Napi::TypedArray>();
    data = static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    bytes = view.ByteLength();
  } else if (info[0].IsDataView()) {
    Napi::DataView view = info[0].As<Napi::DataView>();
    data = static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    bytes = view.ByteLength();
  } else {
    throw Napi::TypeError::New(env, "broadcast takes a TypedArray or a DataView");
  }
  Enter(env);
  return (new Broadcast(env, info[0].As<Napi::Object>(), data, bytes, root))->Start();
}

Napi::Value BarrierAll(const Napi::CallbackInfo& info) {
  Enter(info.Env());
  return (new Barrier(info.Env()))->Start();
}

Napi::Value FinalizeWorld(const Napi::CallbackInfo& info) {
  Enter(info.Env());
  world.finalized = true;  // from now on every call is refused, even before MPI_Finalize returns
  return (new Finalize(info.Env()))->Start();
}

Napi::Value Abort(const Napi::CallbackInfo& info) {
  int code = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  if (!world.initialized || world.finalized) std::exit(code);
  // Open MPI kills every rank of the job (mpirun reports MPI_ABORT with this error code); it does not
  // return. It may run while a collective blocks on a pool thread: MPI_Abort is the one call made then.
  MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("allreduceSum", Napi::Function::New(env, AllreduceSum, "allreduceSum"));
  exports.Set("broadcast", Napi::Function::New(env, BroadcastBytes, "broadcast"));
  exports.Set("barrier", Napi::Function::New(env, BarrierAll, "barrier"));
  exports.Set("finalize", Napi::Function::New(env, FinalizeWorld, "finalize"));
  exports.Set("abort", Napi::Function::New(env, Abort, "abort"));
  return exports;
}

}  // namespace

NODE_API_MODULE(mpi_addon, Module)
