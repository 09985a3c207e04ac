"""seg_model.py - a lane-by-lane Python model of route_seg_kernel<8, LPR, *> (kernels/route.cu)
for LPR = 8 and 16 lanes per row:
the transposed butterfly, group ranks, theta, candidate masks, compaction by
set bits, ranks, and the K-round fallback over the candidate bits (since
run 26), checked against a plain grouped top-k on random DeepSeek-V3 rows
(sigmoid + bias, no bias, exact ties); the fallback also with a capacity
of 8, so that nearly every random row takes it.  Written before any GPU
run to check the index arithmetic; run: python3 kernels/dev/seg_model.py
(prints "bad 0 ...", "fallback bad 0 ..." twice, for each LPR)."""
# emulation of route_seg_kernel<8,LPR,*> logic for one LPR-lane segment (per row), python floats as f32 via numpy
import numpy as np, struct, sys
rng=np.random.default_rng(3)
NCH=8; LG=3; K=8; TG=4
def set_lanes(lpr):
    global LPR, DUP, EPL, NL
    LPR=lpr; DUP=LPR//NCH; EPL=32//LPR; NL=3 if LPR==8 else 4
def ordered(f):
    u=struct.unpack('<I',struct.pack('<f',np.float32(f)+np.float32(0)))[0]
    return (~u & 0xffffffff) if (u & 0x80000000) else (u | 0x80000000)
def pack(f,e): return (ordered(f)<<32) | (0xffffffff-e)
def ref_route(k, has_bias):
    kg=k.reshape(8,32); srt=-np.sort(-kg,axis=1)
    gsc=(srt[:,0]+srt[:,1]).astype(np.float32) if has_bias else srt[:,0]
    order=sorted(range(8), key=lambda g:(-gsc[g], g))[:TG]
    cand=[(k[e],e) for e in range(256) if e//32 in order]
    cand.sort(key=lambda t:(-t[0], t[1]))
    return [e for _,e in cand[:K]]
def seg_route(k, has_bias, cap=32):
    # lane sl holds row[c*32+sl*EPL+j]
    t1=[[0]*NCH for _ in range(LPR)]; t2=[[0]*NCH for _ in range(LPR)]
    for sl in range(LPR):
        for c in range(NCH):
            v=[k[c*32+sl*EPL+j] for j in range(EPL)]
            hi0,lo0=max(v[0],v[1]),min(v[0],v[1])
            if EPL==4:
                hi1,lo1=max(v[2],v[3]),min(v[2],v[3])
                t1[sl][c]=max(hi0,hi1); t2[sl][c]=max(min(hi0,hi1),max(lo0,lo1))
            else:
                t1[sl][c]=hi0; t2[sl][c]=lo0
    d=LPR//2
    for lv in range(NL):
        n=(NCH>>lv) if lv<LG else 1; half=n//2 if lv<LG else 1
        new1=[r[:] for r in t1]; new2=[r[:] for r in t2]
        for sl in range(LPR):
            up=(sl&d)!=0; p=sl^d; pup=(p&d)!=0
            for q in range(half):
                if lv<LG:
                    k1=t1[sl][q+half] if up else t1[sl][q]; k2=t2[sl][q+half] if up else t2[sl][q]
                    o1=t1[p][q] if pup else t1[p][q+half]; o2=t2[p][q] if pup else t2[p][q+half]
                else:
                    k1=t1[sl][q]; k2=t2[sl][q]; o1=t1[p][q]; o2=t2[p][q]
                new2[sl][q]=max(min(k1,o1),max(k2,o2)); new1[sl][q]=max(k1,o1)
        t1,t2=new1,new2; d>>=1
    gsc=[np.float32(t1[sl][0]+t2[sl][0]) if has_bias else t1[sl][0] for sl in range(LPR)]
    kept=[]
    for sl in range(LPR):
        g=sl//DUP; r=0
        for j in range(1,NCH):
            o=gsc[sl^(j*DUP)]; og=(sl^(j*DUP))//DUP
            r+= o>gsc[sl] or (o==gsc[sl] and og<g)
        kept.append(r<TG)
    keep=sum(1<<c for c in range(NCH) if kept[c*DUP])
    th=min(t2[sl][0] if kept[sl] else np.inf for sl in range(LPR))
    m=[0]*LPR
    for sl in range(LPR):
        for c in range(NCH):
            thc=th if (keep>>c)&1 else np.nan
            for j in range(EPL):
                if k[c*32+sl*EPL+j]>=thc: m[sl]|=1<<(c*EPL+j)
    n=[bin(x).count('1') for x in m]; incl=list(np.cumsum(n)); N=incl[LPR-1]
    if N>cap: return fallback_bits(k, m), N
    cand=[None]*N
    for sl in range(LPR):
        pos=incl[sl]-n[sl]; mm=m[sl]
        while mm:
            r=(mm & -mm).bit_length()-1; mm&=mm-1
            e=(r//EPL)*32+sl*EPL+(r%EPL); cand[pos]=pack(k[e],e); pos+=1
    win=[None]*K
    for q in range(N):
        rk=sum(1 for j in range(N) if cand[j]>cand[q])
        if rk<K: win[rk]=0xffffffff-(cand[q]&0xffffffff)
    return win, N
# fallback (step 6): K rounds of a segment argmax over each lane's candidate
# bits m[sl] (keys >= theta in the kept chunks), a round's winner cleared
# from its lane's bits
def fallback_bits(k, m):
    left=m[:]; win=[]
    for kk in range(K):
        best=0
        for sl in range(LPR):
            mm=left[sl]
            while mm:
                r=(mm & -mm).bit_length()-1; mm&=mm-1
                e=(r//EPL)*32+sl*EPL+(r%EPL)
                best=max(best, pack(k[e],e))
        id_=0xffffffff-(best&0xffffffff)
        left[(id_&31)//EPL] &= ~(1<<((id_>>5)*EPL+id_%EPL))
        win.append(id_)
    return win
for lpr in (8, 16):
    set_lanes(lpr); print("LPR", lpr)
    bad=0; Ns=[]
    for t in range(3000):
        x=(rng.standard_normal(256)*2).astype(np.float32)
        hb = t%3!=0
        if t%7==0: x=rng.integers(0,3,256).astype(np.float32); hb=False
        b=(rng.standard_normal(256)*0.1).astype(np.float32)
        s=(np.float32(1)/(np.float32(1)+np.exp(-x))).astype(np.float32)
        k=(s+b).astype(np.float32) if hb else x
        w,N=seg_route(list(k),hb)
        Ns.append(N)
        r=ref_route(k,hb)
        if w!=r: bad+=1; print("mismatch",t,w,r) if bad<5 else None
    print("bad",bad,"N mean",np.mean(Ns),"fallback",sum(1 for n in Ns if n>32))
    # the fallback on every kind of row: capacity 8 (random rows, with and
    # without bias) and exact ties (logits in {0, 1, 2}: N > 32 in most rows)
    for label, ties in (("random, capacity 8", False), ("ties", True)):
        bad=0; used=0
        for t in range(600):
            x=(rng.integers(0,3,256) if ties else rng.standard_normal(256)*2).astype(np.float32)
            hb=not ties and t%2==0
            b=(rng.standard_normal(256)*0.1).astype(np.float32)
            s=(np.float32(1)/(np.float32(1)+np.exp(-x))).astype(np.float32)
            k=(s+b).astype(np.float32) if hb else x
            w,N=seg_route(list(k),hb,cap=32 if ties else 8)
            used+= N>(32 if ties else 8)
            if w!=ref_route(k,hb): bad+=1
        print("fallback bad",bad,"(%s: %d of 600 rows took it)"%(label,used))
